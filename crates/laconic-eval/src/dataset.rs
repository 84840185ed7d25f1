//! Question/answer datasets from JSONL files, with configurable field names and gold normalisation.
//!
//! Shared by the evaluator and the trainer: any JSONL file whose lines are objects holding a question and
//! a gold answer. The built-in datasets ([`BuiltIn`]) ship in `assets/data/` (see its README for sources,
//! licences and checksums); AIME, AMC, MinervaMath, OlympiadBench or DeepScaleR come as user files with
//! the same shape (`{"problem": "...", "answer": "..."}`; see `docs/eval.md`).

use std::path::{Path, PathBuf};

use laconic_reward::gold_answer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{backticked, Error, Result};

/// Which JSON keys hold the question and the gold answer. Each is a list of accepted names: the first one
/// a record has is used, so one setting reads GSM8K (`question`/`answer`), MATH-500
/// (`problem`/`answer`) and MATH (`problem`/`solution`) alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fields {
    /// Names of the question field. Default `problem`, `question`, `prompt`.
    pub question: Vec<String>,
    /// Names of the gold-answer field. Default `answer`, `solution`, `final_answer`.
    pub answer: Vec<String>,
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            question: ["problem", "question", "prompt"].map(String::from).to_vec(),
            answer: ["answer", "solution", "final_answer"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl Fields {
    /// Exactly one name for each field.
    pub fn new(question: impl Into<String>, answer: impl Into<String>) -> Self {
        Self {
            question: vec![question.into()],
            answer: vec![answer.into()],
        }
    }
}

/// How the gold answer is normalised when a record is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum GoldFormat {
    /// laconic-reward's [`gold_answer`]: a GSM8K solution `… #### 72` → `72`, a MATH solution → the
    /// content of its last `\boxed{}`, anything else trimmed of spaces and `$`. Default.
    #[default]
    Auto,
    /// The field as written.
    Raw,
}

impl GoldFormat {
    /// The normalised gold answer of `raw`.
    pub fn apply(self, raw: &str) -> String {
        match self {
            GoldFormat::Auto => gold_answer(raw),
            GoldFormat::Raw => raw.to_string(),
        }
    }
}

/// One question of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// 0-based position among the file's records (blank lines skipped).
    pub index: usize,
    /// 1-based line of the file it was read from (0 when it was not read from a file).
    #[serde(default)]
    pub line: usize,
    /// The question text.
    pub question: String,
    /// The gold answer after [`GoldFormat`] normalisation.
    pub answer: String,
}

/// Where a dataset lives and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Name used in reports (a benchmark column).
    pub name: String,
    /// The JSONL file.
    pub path: PathBuf,
    /// Field names.
    #[serde(default)]
    pub fields: Fields,
    /// Gold normalisation.
    #[serde(default)]
    pub gold: GoldFormat,
    /// Keep only the first `limit` records.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl DatasetSpec {
    /// A spec with default fields and gold normalisation, named after the file stem.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path
            .file_stem()
            .map_or_else(|| "data".to_string(), |s| s.to_string_lossy().into_owned());
        Self {
            name,
            path,
            fields: Fields::default(),
            gold: GoldFormat::Auto,
            limit: None,
        }
    }

    /// Reads the records.
    ///
    /// # Errors
    /// As [`read_jsonl`].
    pub fn load(&self) -> Result<Vec<Record>> {
        let mut records = read_jsonl(&self.path, &self.fields, self.gold)?;
        if let Some(limit) = self.limit {
            records.truncate(limit);
        }
        Ok(records)
    }
}

/// The datasets shipped in `assets/data/` (sources and licences in its README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuiltIn {
    /// GSM8K test split, 1,319 grade-school word problems (`question`, `answer` ending in `#### N`).
    #[serde(rename = "gsm8k")]
    Gsm8kTest,
    /// GSM8K train split, 7,473 problems (for training).
    #[serde(rename = "gsm8k-train")]
    Gsm8kTrain,
    /// MATH-500, the 500-problem MATH test subset of "Let's Verify Step by Step" (`problem`, `answer`).
    #[serde(rename = "math500")]
    Math500,
}

impl BuiltIn {
    /// Every built-in dataset.
    pub const ALL: [BuiltIn; 3] = [BuiltIn::Gsm8kTest, BuiltIn::Gsm8kTrain, BuiltIn::Math500];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BuiltIn::Gsm8kTest => "gsm8k",
            BuiltIn::Gsm8kTrain => "gsm8k-train",
            BuiltIn::Math500 => "math500",
        }
    }

    /// The file, relative to the data folder (`assets/data` in the repository).
    pub fn file(self) -> &'static str {
        match self {
            BuiltIn::Gsm8kTest => "gsm8k/test.jsonl",
            BuiltIn::Gsm8kTrain => "gsm8k/train.jsonl",
            BuiltIn::Math500 => "math500/test.jsonl",
        }
    }

    /// Number of records in the file.
    pub fn record_count(self) -> usize {
        match self {
            BuiltIn::Gsm8kTest => 1319,
            BuiltIn::Gsm8kTrain => 7473,
            BuiltIn::Math500 => 500,
        }
    }

    /// The built-in called `name`.
    ///
    /// # Errors
    /// An unknown name; the message lists the known ones.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| Error::UnknownDataset {
                name: name.to_string(),
                known: backticked(Self::ALL.map(BuiltIn::name)),
            })
    }

    /// The spec of this dataset inside `data_dir`.
    pub fn spec(self, data_dir: impl AsRef<Path>) -> DatasetSpec {
        let (question, answer) = match self {
            BuiltIn::Gsm8kTest | BuiltIn::Gsm8kTrain => ("question", "answer"),
            BuiltIn::Math500 => ("problem", "answer"),
        };
        DatasetSpec {
            name: self.name().to_string(),
            path: data_dir.as_ref().join(self.file()),
            fields: Fields::new(question, answer),
            gold: GoldFormat::Auto,
            limit: None,
        }
    }
}

/// Reads a JSONL dataset: one JSON object per line, blank lines skipped.
///
/// # Errors
/// An unreadable file, a line that is not a JSON object, a record without a question or answer field (the
/// error names the file, the line and the keys it has), a field that is neither a string nor a number, or
/// a file without records.
pub fn read_jsonl(
    path: impl AsRef<Path>,
    fields: &Fields,
    gold: GoldFormat,
) -> Result<Vec<Record>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::read(path, e))?;
    let text = utf8(bytes, path)?;
    parse_jsonl(&text, path, fields, gold)
}

/// The file's text without a leading byte-order mark; non-UTF-8 bytes are an error naming their line.
fn utf8(bytes: Vec<u8>, path: &Path) -> Result<String> {
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line_start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        Error::NotUtf8 {
            path: path.to_path_buf(),
            line: bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1,
            column: at - line_start + 1,
            byte: bytes[at],
        }
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Parses JSONL text; `origin` names it in errors.
///
/// # Errors
/// As [`read_jsonl`].
pub fn parse_jsonl(
    text: &str,
    origin: impl AsRef<Path>,
    fields: &Fields,
    gold: GoldFormat,
) -> Result<Vec<Record>> {
    let path = origin.as_ref();
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = Location { path, line: i + 1 };
        let object: Map<String, Value> =
            serde_json::from_str(line).map_err(|source| Error::JsonLine {
                path: path.to_path_buf(),
                line: at.line,
                source,
            })?;
        let question = at.field(&object, "question", &fields.question)?;
        let answer = at.field(&object, "answer", &fields.answer)?;
        records.push(Record {
            index: records.len(),
            line: at.line,
            question,
            answer: gold.apply(&answer),
        });
    }
    if records.is_empty() {
        return Err(Error::EmptyDataset {
            path: path.to_path_buf(),
        });
    }
    Ok(records)
}

/// A line of a file, for error messages.
struct Location<'a> {
    path: &'a Path,
    line: usize,
}

impl Location<'_> {
    /// The first of `names` present in `object`, as text (numbers are written out).
    fn field(
        &self,
        object: &Map<String, Value>,
        role: &'static str,
        names: &[String],
    ) -> Result<String> {
        let Some((name, value)) = names.iter().find_map(|n| object.get(n).map(|v| (n, v))) else {
            return Err(Error::MissingField {
                path: self.path.to_path_buf(),
                line: self.line,
                role,
                wanted: backticked(names),
                found: backticked(object.keys()),
            });
        };
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(Error::FieldType {
                path: self.path.to_path_buf(),
                line: self.line,
                field: name.clone(),
                found: json_type(other),
            }),
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/data")
    }

    /// A byte that is not UTF-8 names its line and column; a UTF-8 byte-order mark is skipped; each
    /// record keeps its file line (blank lines counted).
    #[test]
    fn encoding_problems_name_the_line() {
        let dir = std::env::temp_dir().join(format!("laconic-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.jsonl");
        let mut bytes = b"{\"question\": \"a\", \"answer\": 1}\n\n{\"question\": \"".to_vec();
        bytes.extend([0xff, b'"', b'}', b'\n']);
        std::fs::write(&path, &bytes).unwrap();
        let err = read_jsonl(&path, &Fields::default(), GoldFormat::Auto)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "bad.jsonl` line 3: not UTF-8 (byte 0xff at column 15); save the file as UTF-8"
            ),
            "{err}"
        );
        let path = dir.join("bom.jsonl");
        std::fs::write(
            &path,
            "\u{feff}{\"question\": \"a\", \"answer\": 1}\n\n{\"question\": \"b\", \"answer\": 2}\n",
        )
        .unwrap();
        let records = read_jsonl(&path, &Fields::default(), GoldFormat::Auto).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].line, records[1].line), (1, 3));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reads_gsm8k_style_records_and_normalises_gold() {
        let text = "{\"question\": \"1+1?\", \"answer\": \"1 + 1 = 2\\n#### 2\"}\n\n{\"question\": \"2*3?\", \"answer\": 6}\n";
        let records = parse_jsonl(text, "mem.jsonl", &Fields::default(), GoldFormat::Auto).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].answer, "2");
        assert_eq!(records[1].answer, "6");
        assert_eq!(records[1].index, 1);
        let raw = parse_jsonl(text, "mem.jsonl", &Fields::default(), GoldFormat::Raw).unwrap();
        assert_eq!(raw[0].answer, "1 + 1 = 2\n#### 2");
    }

    #[test]
    fn field_names_are_tried_in_order() {
        let text = r#"{"problem": "p", "solution": "so \\boxed{4}", "answer": "4"}"#;
        let fields = Fields {
            question: vec!["question".into(), "problem".into()],
            answer: vec!["solution".into()],
        };
        let r = parse_jsonl(text, "m.jsonl", &fields, GoldFormat::Auto).unwrap();
        assert_eq!((r[0].question.as_str(), r[0].answer.as_str()), ("p", "4"));
    }

    #[test]
    fn a_broken_line_names_the_file_and_line() {
        let text = "{\"question\": \"a\", \"answer\": \"1\"}\n{\"question\": \"b\", \"answer\"\n";
        let err =
            parse_jsonl(text, "data/x.jsonl", &Fields::default(), GoldFormat::Auto).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`data/x.jsonl` line 2: expected a JSON object"
        );

        let text = "\n{\"q\": \"a\", \"answer\": \"1\"}\n";
        let err = parse_jsonl(text, "x.jsonl", &Fields::default(), GoldFormat::Auto).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`x.jsonl` line 2: no question field (looked for `problem`, `question`, `prompt`; the record has `answer`, `q`)"
        );

        let text = "{\"question\": \"a\", \"answer\": [1]}\n";
        let err = parse_jsonl(text, "x.jsonl", &Fields::default(), GoldFormat::Auto).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`x.jsonl` line 1: field `answer` expected a string or a number, found an array"
        );
        let err =
            parse_jsonl("\n \n", "x.jsonl", &Fields::default(), GoldFormat::Auto).unwrap_err();
        assert!(matches!(err, Error::EmptyDataset { .. }), "{err}");
    }

    #[test]
    fn built_in_datasets_load_with_their_record_counts() {
        for builtin in BuiltIn::ALL {
            let records = builtin.spec(data_dir()).load().unwrap();
            assert_eq!(records.len(), builtin.record_count(), "{}", builtin.name());
            assert!(records
                .iter()
                .all(|r| !r.question.is_empty() && !r.answer.is_empty()));
            assert_eq!(BuiltIn::from_name(builtin.name()).unwrap(), builtin);
        }
        let gsm8k = BuiltIn::Gsm8kTest.spec(data_dir()).load().unwrap();
        assert_eq!(gsm8k[0].answer, "18");
        assert!(gsm8k[0].question.starts_with("Janet"));
        let math = BuiltIn::Math500.spec(data_dir()).load().unwrap();
        assert_eq!(math[0].answer, "\\left( 3, \\frac{\\pi}{2} \\right)");
        let err = BuiltIn::from_name("aime").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown built-in dataset `aime` (expected one of `gsm8k`, `gsm8k-train`, `math500`)"
        );
    }

    #[test]
    fn limit_keeps_the_first_records() {
        let spec = DatasetSpec {
            limit: Some(3),
            ..BuiltIn::Math500.spec(data_dir())
        };
        assert_eq!(spec.load().unwrap().len(), 3);
        assert_eq!(DatasetSpec::from_path("a/b/aime25.jsonl").name, "aime25");
    }
}
