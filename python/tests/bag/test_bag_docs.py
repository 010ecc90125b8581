"""The examples in oxidask.bag's docstrings run and give what they show."""

import doctest

import pytest

import oxidask.bag
import oxidask.bag.core
import oxidask.bag.text


@pytest.mark.parametrize("module", [oxidask.bag, oxidask.bag.core, oxidask.bag.text])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
