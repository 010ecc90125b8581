"""The examples in oxidask.dataframe's docstrings run and give what they show."""

import doctest

import pytest

import oxidask.dataframe
import oxidask.dataframe.core
import oxidask.dataframe.io


@pytest.mark.parametrize("module", [oxidask.dataframe, oxidask.dataframe.core,
                                    oxidask.dataframe.io])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
