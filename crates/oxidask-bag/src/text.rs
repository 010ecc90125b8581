//! Text files: `read_text` (local files, globs, directories; `.gz` and `.zst`; blocks of
//! `blocksize` bytes cut on line boundaries; any line delimiter), JSON lines, and
//! `to_textfiles` (a file per partition, written under a temporary directory and published
//! only when every partition succeeded).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use oxidask_core::op::{Args, Input, TaskFailure};
use oxidask_core::task::{Arg, Op, Task, TaskSpec};
use oxidask_core::{Delayed, Key, Token, Value};
use smallvec::smallvec;

use crate::bag::{part_key, Bag};
use crate::json::Json;
use crate::kind::Fallible;
use crate::ops::{Ctx, Params, PUBLISH_TEXT, READ_TEXT, WRITE_TEXT};
use crate::BagError;

/// How a text file is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// From the file name: `.gz` is gzip, `.zst` is zstandard, anything else plain.
    #[default]
    Infer,
    /// Not compressed.
    None,
    /// gzip (`.gz`).
    Gzip,
    /// zstandard (`.zst`; needs the `zstd` feature, on by default).
    Zstd,
}

impl Compression {
    fn resolve(self, path: &str) -> Compression {
        match self {
            Compression::Infer if path.ends_with(".gz") => Compression::Gzip,
            Compression::Infer if path.ends_with(".zst") => Compression::Zstd,
            Compression::Infer => Compression::None,
            c => c,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
            _ => "",
        }
    }
}

/// What a read produces per line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lines = 0,
    Json = 1,
    JsonResults = 2,
}

/// Reads text files into a bag of lines: Dask's `read_text`.
///
/// Each line keeps its delimiter, as in Dask (`"hello\n"`); the last line of a file may
/// have none. Paths are files, glob patterns (`logs/*.txt`) or directories (every file in
/// them, sorted); `.gz` and `.zst` files are decompressed. An uncompressed file larger than
/// [`TextReader::blocksize`] is cut into several partitions on line boundaries; a compressed
/// file is one partition.
///
/// ```
/// use oxidask_bag::TextReader;
/// use oxidask_core::Collection;
/// # oxidask_core::compute::with_scheduler(std::sync::Arc::new(oxidask_core::compute::Inline), || {
/// let dir = std::env::temp_dir().join(format!("oxidask-bag-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("a.txt"), "one two\nthree\n").unwrap();
/// let lines = TextReader::new(dir.join("a.txt")).blocksize(4).lines().unwrap();
/// assert_eq!(lines.compute().unwrap(), vec!["one two\n", "three\n"]);
/// std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct TextReader {
    paths: Vec<String>,
    blocksize: Option<u64>,
    delimiter: String,
    compression: Compression,
}

/// Reads text files line by line into a `Bag<String>` (see [`TextReader`] for options).
pub fn read_text(paths: impl IntoPaths) -> Result<Bag<String>, BagError> {
    TextReader::new(paths).lines()
}

/// Reads JSON-lines files into a `Bag<Json>`; a malformed line fails the computation with
/// an error naming the file and line (see [`TextReader::json_results`] to keep going).
pub fn read_json(paths: impl IntoPaths) -> Result<Bag<Json>, BagError> {
    TextReader::new(paths).json()
}

/// One path or many.
pub trait IntoPaths {
    /// The paths as text.
    fn into_paths(self) -> Vec<String>;
}

impl IntoPaths for &str {
    fn into_paths(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}
impl IntoPaths for String {
    fn into_paths(self) -> Vec<String> {
        vec![self]
    }
}
impl IntoPaths for &Path {
    fn into_paths(self) -> Vec<String> {
        vec![self.to_string_lossy().into_owned()]
    }
}
impl IntoPaths for PathBuf {
    fn into_paths(self) -> Vec<String> {
        vec![self.to_string_lossy().into_owned()]
    }
}
impl IntoPaths for &PathBuf {
    fn into_paths(self) -> Vec<String> {
        vec![self.to_string_lossy().into_owned()]
    }
}
impl<P: IntoPaths> IntoPaths for Vec<P> {
    fn into_paths(self) -> Vec<String> {
        self.into_iter().flat_map(IntoPaths::into_paths).collect()
    }
}

impl TextReader {
    /// A reader of `paths` with Dask's defaults: no block splitting, `"\n"` lines, compression
    /// from the file name.
    pub fn new(paths: impl IntoPaths) -> TextReader {
        TextReader {
            paths: paths.into_paths(),
            blocksize: None,
            delimiter: "\n".to_owned(),
            compression: Compression::Infer,
        }
    }

    /// Cuts uncompressed files into partitions of about `bytes` bytes, on line boundaries.
    pub fn blocksize(mut self, bytes: u64) -> TextReader {
        self.blocksize = Some(bytes.max(1));
        self
    }

    /// The line delimiter (`"\n"` by default; `"\r\n"`, `";"`, … work too).
    pub fn delimiter(mut self, delimiter: impl Into<String>) -> TextReader {
        self.delimiter = delimiter.into();
        self
    }

    /// How the files are compressed (inferred from their names by default).
    pub fn compression(mut self, c: Compression) -> TextReader {
        self.compression = c;
        self
    }

    /// The lines, each with its delimiter.
    pub fn lines(&self) -> Result<Bag<String>, BagError> {
        self.build(Mode::Lines)
    }

    /// Each non-blank line parsed as JSON; a malformed line fails the computation with an
    /// error naming the file and line number.
    pub fn json(&self) -> Result<Bag<Json>, BagError> {
        self.build(Mode::Json)
    }

    /// Each non-blank line parsed as JSON, a malformed one kept as an `Err` naming the file,
    /// line and problem — the bad-records pattern: `.oks()` keeps the good records,
    /// `.count_errs()` counts the bad ones, `.errs()` lists them.
    pub fn json_results(&self) -> Result<Bag<Result<Json, String>>, BagError> {
        self.build(Mode::JsonResults)
    }

    fn build<T>(&self, mode: Mode) -> Result<Bag<T>, BagError> {
        if self.delimiter.is_empty() {
            return Err(BagError::Invalid(
                "read_text: the line delimiter is empty; give at least one character".into(),
            ));
        }
        let files = expand(&self.paths)?;
        let mut t = oxidask_core::tokenize::Tokenizer::new();
        t.write_str("read-text");
        t.write_u64(mode as u64);
        t.write_str(&self.delimiter);
        let mut blocks: Vec<(String, Compression, u64, u64)> = Vec::new();
        for f in &files {
            let meta = std::fs::metadata(f).map_err(|e| BagError::io(f, e))?;
            let c = self.compression.resolve(f);
            if c == Compression::Zstd && !cfg!(feature = "zstd") {
                return Err(BagError::Invalid(format!(
                    "{f}: reading .zst files needs oxidask-bag's `zstd` feature"
                )));
            }
            t.write_str(f);
            t.write_u64(meta.len());
            if let Ok(m) = meta.modified() {
                if let Ok(d) = m.duration_since(std::time::UNIX_EPOCH) {
                    t.write_u64(d.as_nanos() as u64);
                }
            }
            match self.blocksize {
                Some(bs) if c == Compression::None && meta.len() > bs => {
                    let mut s = 0;
                    while s < meta.len() {
                        blocks.push((f.clone(), c, s, (s + bs).min(meta.len())));
                        s += bs;
                    }
                }
                _ => blocks.push((f.clone(), c, 0, u64::MAX)),
            }
        }
        let token = t.finish();
        let parts = blocks
            .into_iter()
            .enumerate()
            .map(|(i, (path, c, start, end))| {
                let params: Params = (
                    Vec::new(),
                    vec![path, self.delimiter.clone(), c.code().to_owned()],
                    vec![start, end, mode as u64],
                );
                let task = Task::from_spec(TaskSpec::Call {
                    op: Op::Registered(&READ_TEXT),
                    args: smallvec![Arg::Value(Value::new(params))],
                });
                Delayed::from_task(part_key("read-text", token, i), task, [])
            })
            .collect();
        Ok(Bag::from_parts(parts))
    }
}

/// Paths, globs and directories to a sorted list of files (in the order given).
fn expand(paths: &[String]) -> Result<Vec<String>, BagError> {
    if paths.is_empty() {
        return Err(BagError::Invalid("read_text: no paths given".into()));
    }
    let mut out = Vec::new();
    for p in paths {
        if p.contains("://") {
            return Err(BagError::Invalid(format!(
                "{p}: oxidask-bag reads local files only (remote storage such as s3:// is \
                 read by oxidask-dataframe; copy the files locally or read them there)"
            )));
        }
        if p.contains(['*', '?', '[']) {
            let mut matched: Vec<String> = glob::glob(p)
                .map_err(|e| BagError::Invalid(format!("{p}: bad glob pattern: {e}")))?
                .filter_map(Result::ok)
                .filter(|m| m.is_file())
                .map(|m| m.to_string_lossy().into_owned())
                .collect();
            if matched.is_empty() {
                return Err(BagError::Invalid(format!(
                    "{p}: no file matches this pattern"
                )));
            }
            matched.sort();
            out.extend(matched);
        } else if Path::new(p).is_dir() {
            let mut files: Vec<String> = std::fs::read_dir(p)
                .map_err(|e| BagError::io(p, e))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|m| {
                    m.is_file()
                        && !m
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .map(|m| m.to_string_lossy().into_owned())
                .collect();
            files.sort();
            out.extend(files);
        } else if Path::new(p).is_file() {
            out.push(p.clone());
        } else {
            return Err(BagError::Invalid(format!("{p}: no such file or directory")));
        }
    }
    Ok(out)
}

fn io_fail(path: &str, e: std::io::Error) -> TaskFailure {
    TaskFailure::msg(format!("{path}: {e}"))
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= hay.len() {
        return None;
    }
    if needle.len() == 1 {
        return hay[from..]
            .iter()
            .position(|&b| b == needle[0])
            .map(|i| i + from);
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while let Some(i) = find(hay, needle, at) {
        n += 1;
        at = i + needle.len();
    }
    n
}

/// The bytes of a block: those of the lines starting in `[start, end)` (the whole file,
/// decompressed, for `end == u64::MAX`), and the file offset of the first.
fn read_block(
    path: &str,
    delim: &[u8],
    comp: &str,
    start: u64,
    end: u64,
) -> Fallible<(Vec<u8>, u64)> {
    let mut f = File::open(path).map_err(|e| io_fail(path, e))?;
    if end == u64::MAX {
        let mut buf = Vec::new();
        match comp {
            "gz" => flate2::read::MultiGzDecoder::new(f)
                .read_to_end(&mut buf)
                .map_err(|e| io_fail(path, e))?,
            #[cfg(feature = "zstd")]
            "zst" => zstd::stream::read::Decoder::new(f)
                .and_then(|mut d| d.read_to_end(&mut buf))
                .map_err(|e| io_fail(path, e))?,
            _ => f.read_to_end(&mut buf).map_err(|e| io_fail(path, e))?,
        };
        return Ok((buf, 0));
    }
    let dlen = delim.len() as u64;
    let begin = if start == 0 {
        0
    } else {
        start.saturating_sub(dlen)
    };
    f.seek(SeekFrom::Start(begin))
        .map_err(|e| io_fail(path, e))?;
    let mut buf = Vec::with_capacity((end - begin) as usize + 4096);
    (&mut f)
        .take(end - begin)
        .read_to_end(&mut buf)
        .map_err(|e| io_fail(path, e))?;
    let first = if start == 0 {
        0
    } else {
        match find(&buf, delim, 0) {
            Some(i) => i + delim.len(),
            None => return Ok((Vec::new(), start)),
        }
    };
    let rel_end = (end - begin) as usize;
    if first >= rel_end {
        return Ok((Vec::new(), start));
    }
    // The text runs to the first line start at or after `end`.
    let from = first.max(rel_end.saturating_sub(delim.len()));
    let stop = loop {
        if let Some(i) = find(&buf, delim, from) {
            break i + delim.len();
        }
        let had = buf.len();
        (&mut f)
            .take(1 << 20)
            .read_to_end(&mut buf)
            .map_err(|e| io_fail(path, e))?;
        if buf.len() == had {
            break buf.len();
        }
    };
    buf.truncate(stop);
    buf.drain(..first);
    Ok((buf, begin + first as u64))
}

/// The 1-based line number of byte `offset` of the file (`base` is the file offset of
/// `buf[0]`, whose earlier lines are counted by reading the file's start).
fn line_of(path: &str, delim: &[u8], comp: &str, base: u64, buf: &[u8], offset: usize) -> usize {
    let before = if base == 0 {
        0
    } else {
        read_block(path, delim, comp, 0, u64::MAX)
            .map(|(all, _)| count(&all[..(base as usize).min(all.len())], delim))
            .unwrap_or(0)
    };
    before + count(&buf[..offset], delim) + 1
}

/// `read-text`: strs `[path, delimiter, compression]`, ints `[start, end, mode]`.
pub(crate) fn read_block_op(ctx: &Ctx, _: &mut Args) -> Fallible<Value> {
    let (path, delim, comp) = (&ctx.strs[0], ctx.strs[1].as_bytes(), ctx.strs[2].as_str());
    let (start, end, mode) = (ctx.ints[0], ctx.ints[1], ctx.ints[2]);
    let (buf, base) = read_block(path, delim, comp, start, end)?;
    let text = match std::str::from_utf8(&buf) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            let line = line_of(path, delim, comp, base, &buf, at);
            return Err(TaskFailure::msg(format!(
                "{path}: line {line} is not valid UTF-8 (byte {} of the file); read_text reads \
                 UTF-8 text: convert the file first (e.g. `iconv -f latin1 -t utf-8`)",
                base + at as u64
            )));
        }
    };
    let delim = ctx.strs[1].as_str();
    if mode == Mode::Lines as u64 {
        let lines: Vec<String> = text.split_inclusive(delim).map(str::to_owned).collect();
        return Ok(Value::new(lines));
    }
    // JSON lines: line numbers are counted only when one is needed.
    let mut first_line: Option<usize> = None;
    let mut number = |offset: usize| -> usize {
        let base_line = *first_line
            .get_or_insert_with(|| line_of(path, delim.as_bytes(), comp, base, text.as_bytes(), 0));
        base_line + count(&text.as_bytes()[..offset], delim.as_bytes())
    };
    let mut good: Vec<Json> = Vec::new();
    let mut all: Vec<Result<Json, String>> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive(delim) {
        let here = offset;
        offset += line.len();
        let body = line.strip_suffix(delim).unwrap_or(line);
        if body.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(body) {
            Ok(v) if mode == Mode::Json as u64 => good.push(Json(v)),
            Ok(v) => all.push(Ok(Json(v))),
            Err(e) => {
                let msg = format!("{path}:{}: malformed JSON: {e}", number(here));
                if mode == Mode::Json as u64 {
                    return Err(TaskFailure::msg(format!(
                        "{msg}; use TextReader::json_results() to keep the good records and \
                         count the bad ones"
                    )));
                }
                all.push(Err(msg));
            }
        }
    }
    Ok(if mode == Mode::Json as u64 {
        Value::new(good)
    } else {
        Value::new(all)
    })
}

/// `write-text`: strs `[temporary file, compression]`, the partition; returns bytes written.
pub(crate) fn write_part_op(ctx: &Ctx, args: &mut Args) -> Fallible<Value> {
    let (path, comp) = (&ctx.strs[0], ctx.strs[1].as_str());
    let lines = match args.take_input(1) {
        Some(Input::Value(v)) => v.take::<Vec<String>>()?,
        _ => return Err(TaskFailure::argument("write-text expects one partition")),
    };
    let file = File::create(path).map_err(|e| io_fail(path, e))?;
    let mut out: Box<dyn Write> = match comp {
        "gz" => Box::new(flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::default(),
        )),
        #[cfg(feature = "zstd")]
        "zst" => Box::new(
            zstd::stream::write::Encoder::new(std::io::BufWriter::new(file), 3)
                .map_err(|e| io_fail(path, e))?
                .auto_finish(),
        ),
        _ => Box::new(std::io::BufWriter::new(file)),
    };
    let mut n = 0u64;
    for l in &lines {
        out.write_all(l.as_bytes()).map_err(|e| io_fail(path, e))?;
        n += l.len() as u64;
        if !l.ends_with('\n') {
            out.write_all(b"\n").map_err(|e| io_fail(path, e))?;
            n += 1;
        }
    }
    out.flush().map_err(|e| io_fail(path, e))?;
    drop(out);
    Ok(Value::new(n))
}

/// `publish-text`: strs `[temporary dir, tmp0, final0, tmp1, final1, …]`, after every part.
pub(crate) fn publish_op(ctx: &Ctx, _: &mut Args) -> Fallible<Value> {
    let tmp = &ctx.strs[0];
    let mut written = Vec::new();
    for pair in ctx.strs[1..].chunks(2) {
        std::fs::rename(&pair[0], &pair[1]).map_err(|e| io_fail(&pair[1], e))?;
        written.push(pair[1].clone());
    }
    let _ = std::fs::remove_dir(tmp);
    Ok(Value::new(written))
}

impl Bag<String> {
    /// Writes one text file per partition, each record on its own line (a newline is added
    /// unless the record ends with one), and returns the paths written: Dask's
    /// `to_textfiles`.
    ///
    /// `path` is a directory (files `0.part`, `1.part`, …) or a pattern with one `*`, which is
    /// replaced by the partition number (`out/part-*.txt.gz`; `.gz`/`.zst` names compress).
    /// Partitions are written under a temporary directory next to the outputs and moved into
    /// place only once every partition is written, so a failure leaves no partial output.
    pub fn to_textfiles(&self, path: impl AsRef<Path>) -> Result<Vec<String>, BagError> {
        use oxidask_core::Collection;
        Ok(self.to_textfiles_delayed(path)?.compute()?)
    }

    /// [`Bag::to_textfiles`], lazily: the delayed list of paths written.
    pub fn to_textfiles_delayed(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<Delayed<Vec<String>>, BagError> {
        let path = path.as_ref().to_string_lossy().into_owned();
        let n = self.npartitions();
        let (dir, names): (PathBuf, Vec<String>) = if path.contains('*') {
            let names: Vec<String> = (0..n).map(|i| path.replace('*', &i.to_string())).collect();
            let dir = Path::new(&path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            (dir, names)
        } else {
            let names = (0..n)
                .map(|i| {
                    Path::new(&path)
                        .join(format!("{i}.part"))
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            (PathBuf::from(&path), names)
        };
        std::fs::create_dir_all(&dir).map_err(|e| BagError::io(&dir.to_string_lossy(), e))?;
        let token = Token::unique();
        let tmp = dir.join(format!(".oxidask-tmp-{:x}", token.as_u128() as u64));
        std::fs::create_dir_all(&tmp).map_err(|e| BagError::io(&tmp.to_string_lossy(), e))?;
        let tmp_s = tmp.to_string_lossy().into_owned();
        let mut written: Vec<Delayed<()>> = Vec::with_capacity(n);
        let mut publish_strs = vec![tmp_s.clone()];
        for (i, (part, name)) in self.partitions().iter().zip(&names).enumerate() {
            let tmp_file = tmp.join(i.to_string()).to_string_lossy().into_owned();
            let comp = Compression::Infer.resolve(name).code().to_owned();
            let params: Params = (Vec::new(), vec![tmp_file.clone(), comp], Vec::new());
            let task = Task::from_spec(TaskSpec::Call {
                op: Op::Registered(&WRITE_TEXT),
                args: smallvec![Arg::Value(Value::new(params)), Arg::Key(part.key())],
            });
            written.push(Delayed::<()>::from_task(
                part_key("write-text", token, i),
                task,
                [part.erase()],
            ));
            publish_strs.push(tmp_file);
            publish_strs.push(name.clone());
        }
        let params: Params = (Vec::new(), publish_strs, Vec::new());
        let task = Task::from_spec(TaskSpec::Call {
            op: Op::Registered(&PUBLISH_TEXT),
            args: smallvec![
                Arg::Value(Value::new(params)),
                Arg::List(written.iter().map(|d| Arg::Key(d.key())).collect()),
            ],
        });
        Ok(Delayed::from_task(
            Key::new("publish-text", token),
            task,
            written,
        ))
    }
}
