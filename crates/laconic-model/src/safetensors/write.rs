//! Writing one safetensors file with HF's `safetensors` crate, each tensor in the dtype it holds.
//!
//! A [`TensorSource`] knows its dtype and shape up front and gives its bytes only when the writer
//! reaches it: a burn tensor (on any device) is copied to the host then, and the copy is dropped
//! once written, so writing a model holds one tensor on the host at a time. Files are written to a
//! temporary file beside the target, then renamed over it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use safetensors::{Dtype, View};

use crate::error::{Error, Result};

/// `__metadata__` key naming the program that wrote a file.
pub(crate) const PRODUCER_KEY: &str = "producer";
/// laconic's value under [`PRODUCER_KEY`]: a file carrying it was written by laconic, which may
/// replace or remove it in a later save.
pub(crate) const PRODUCER: &str = "laconic";

/// A tensor to write: its dtype and shape now, its bytes when the writer reaches it.
pub struct TensorSource<'a> {
    dtype: DType,
    shape: Vec<usize>,
    bytes: Bytes<'a>,
}

enum Bytes<'a> {
    /// Host data, written as it is.
    Data(TensorData),
    /// Pulled (and converted to the declared dtype) when written.
    Pull(Box<dyn Fn() -> TensorData + 'a>),
}

impl std::fmt::Debug for TensorSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorSource")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("lazy", &matches!(self.bytes, Bytes::Pull(_)))
            .finish()
    }
}

impl<'a> TensorSource<'a> {
    /// Host data, written in its dtype.
    pub fn from_data(data: TensorData) -> Self {
        Self {
            dtype: data.dtype,
            shape: data.shape.to_vec(),
            bytes: Bytes::Data(data),
        }
    }

    /// A burn tensor, read back to the host only when written, in its dtype (a bf16 tensor
    /// writes BF16).
    pub fn from_tensor<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Self {
        Self {
            dtype: tensor.dtype(),
            shape: tensor.dims().to_vec(),
            bytes: Bytes::Pull(Box::new(move || tensor.clone().into_data())),
        }
    }

    /// A tensor of `dtype` and `shape` whose data `pull` gives when written (converted to
    /// `dtype` if it comes in another).
    pub fn lazy(dtype: DType, shape: Vec<usize>, pull: impl Fn() -> TensorData + 'a) -> Self {
        Self {
            dtype,
            shape,
            bytes: Bytes::Pull(Box::new(pull)),
        }
    }

    /// The dtype it is written in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Its shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Its data in its dtype (a lazy source reads it now).
    ///
    /// # Panics
    /// When a lazy source gives data of another shape than it declared.
    pub fn data(&self) -> TensorData {
        match &self.bytes {
            Bytes::Data(data) => data.clone(),
            Bytes::Pull(pull) => {
                let data = pull().convert_dtype(self.dtype);
                assert_eq!(
                    data.shape.as_slice(),
                    self.shape.as_slice(),
                    "a tensor source gave data of another shape than it declared"
                );
                data
            }
        }
    }

    /// The bytes it takes in the file: `elements × dtype size`.
    pub fn byte_len(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product::<u64>() * self.dtype.size() as u64
    }
}

/// A [`TensorSource`] as the `safetensors` crate's [`View`].
struct Pending<'s, 'a> {
    dtype: Dtype,
    source: &'s TensorSource<'a>,
}

impl View for Pending<'_, '_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.source.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match &self.source.bytes {
            Bytes::Data(data) => Cow::Borrowed(data.as_bytes()),
            Bytes::Pull(_) => {
                let bytes = self.source.data().into_bytes();
                Cow::Owned(bytes.try_into_vec::<u8>().unwrap_or_else(|b| b.to_vec()))
            }
        }
    }

    fn data_len(&self) -> usize {
        self.source.byte_len() as usize
    }
}

/// The safetensors dtype with the same bytes as burn's `dtype`.
fn stored_dtype(dtype: DType) -> Option<Dtype> {
    Some(match dtype {
        DType::F64 => Dtype::F64,
        DType::F32 | DType::Flex32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::I8 => Dtype::I8,
        DType::U64 => Dtype::U64,
        DType::U32 => Dtype::U32,
        DType::U16 => Dtype::U16,
        DType::U8 => Dtype::U8,
        DType::Bool(_) | DType::QFloat(_) => return None,
    })
}

/// Writes `tensors` to the safetensors file `path`, each in its dtype, with `__metadata__`
/// `{"format": "pt", "producer": "laconic"}` (transformers asks for `format`). The file is written
/// beside `path` under a temporary name, then renamed over it, so `path` is either the old file or
/// the whole new one. Lazy sources are pulled one at a time, in the file's order (by dtype, then
/// name, as the `safetensors` crate lays them out).
///
/// # Errors
/// A dtype safetensors cannot store (naming the tensor), a name given twice, or a failed write.
pub fn write_tensors(path: &Path, tensors: &[(String, TensorSource<'_>)]) -> Result<()> {
    let fail = |message: String| Error::Write {
        path: path.to_path_buf(),
        message,
    };
    let mut views = Vec::with_capacity(tensors.len());
    let mut seen = std::collections::HashSet::new();
    for (name, source) in tensors {
        if !seen.insert(name.as_str()) {
            return Err(fail(format!("tensor `{name}` is given twice")));
        }
        let dtype = stored_dtype(source.dtype).ok_or_else(|| {
            fail(format!(
                "tensor `{name}` has dtype {:?}, which safetensors cannot store",
                source.dtype
            ))
        })?;
        views.push((name.as_str(), Pending { dtype, source }));
    }
    let metadata = file_metadata();
    let tmp = temp_path(path);
    let written = safetensors::serialize_to_file(views, Some(metadata), &tmp)
        .map_err(|e| fail(e.to_string()))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string())));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// `{"format": "pt", "producer": "laconic"}` in that order, so the same tensors always make the same
/// bytes. The `safetensors` crate takes the metadata as a `HashMap` with a random hasher and writes it
/// in iteration order; each new map draws new hasher keys, so of a few maps one lists `format` first
/// (each does with probability ½; after 64 draws the order is left as it falls, still a valid file).
fn file_metadata() -> HashMap<String, String> {
    let make = || {
        HashMap::from([
            ("format".to_string(), "pt".to_string()),
            (PRODUCER_KEY.to_string(), PRODUCER.to_string()),
        ])
    };
    let mut metadata = make();
    for _ in 0..64 {
        if metadata.keys().next().map(String::as_str) == Some("format") {
            break;
        }
        metadata = make();
    }
    metadata
}

/// A temporary name beside `path` for writing it: `.<name>.tmp<pid>` in the same folder (so the
/// rename stays on one filesystem, and the dot keeps it out of the way of readers).
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::{read_header, SafetensorsIndex};

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("laconic-st-write-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Each float dtype is written as itself: `read_data` gives back the same bytes, dtype and
    /// shape, and `read_f32` the values converted (all exactly representable here).
    #[test]
    fn f32_bf16_and_f16_round_trip_in_their_dtype() {
        let dir = scratch("dtypes");
        let path = dir.join("t.safetensors");
        let values = [1.5f32, -0.25, 3.0, 0.0, -8.0, 0.125];
        let f32_data = TensorData::new(values.to_vec(), [2, 3]);
        let bf16_data = TensorData::new(values.map(half::bf16::from_f32).to_vec(), [3, 2]);
        let f16_data = TensorData::new(values.map(half::f16::from_f32).to_vec(), [6]);
        let tensors = vec![
            ("a".to_string(), TensorSource::from_data(f32_data.clone())),
            ("b".to_string(), TensorSource::from_data(bf16_data.clone())),
            (
                "c".to_string(),
                TensorSource::lazy(DType::F16, vec![6], move || f16_data.clone()),
            ),
        ];
        write_tensors(&path, &tensors).unwrap();
        let index = SafetensorsIndex::from_files(std::slice::from_ref(&path)).unwrap();
        let expected = [
            ("a", f32_data, Dtype::F32),
            ("b", bf16_data.clone(), Dtype::BF16),
            (
                "c",
                TensorData::new(values.map(half::f16::from_f32).to_vec(), [6]),
                Dtype::F16,
            ),
        ];
        for (name, data, stored) in expected {
            let read = index.read_data(name).unwrap();
            assert_eq!(read.dtype, data.dtype, "{name}");
            assert_eq!(read.shape, data.shape, "{name}");
            assert_eq!(read.as_bytes(), data.as_bytes(), "{name}");
            assert_eq!(index.get(name).unwrap().dtype, stored);
            assert_eq!(index.read_f32(name).unwrap(), values, "{name}");
        }
        // Half the bytes of f32: 6 values × 2 bytes.
        let entry = index.get("b").unwrap();
        assert_eq!(entry.end - entry.start, 12);
        let metadata = read_header(&path).unwrap().metadata.unwrap();
        assert_eq!(metadata["format"], "pt");
        assert_eq!(metadata[PRODUCER_KEY], PRODUCER);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Integer tensors (the optimizer's step counters) keep every bit.
    #[test]
    fn i64_counters_round_trip_exactly() {
        let dir = scratch("i64");
        let path = dir.join("t.safetensors");
        let counters = vec![(1i64 << 24) + 1, i64::MAX];
        let tensors = vec![(
            "n".to_string(),
            TensorSource::from_data(TensorData::new(counters.clone(), [2])),
        )];
        write_tensors(&path, &tensors).unwrap();
        let index = SafetensorsIndex::from_files(std::slice::from_ref(&path)).unwrap();
        let read = index.read_data("n").unwrap();
        assert_eq!(read.dtype, DType::I64);
        assert_eq!(read.into_vec::<i64>().unwrap(), counters);
        let err = index.read_f32("n").unwrap_err().to_string();
        assert!(err.contains("`I64`") && err.contains("tensor `n`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The same tensors make the same bytes: the metadata is written `format` first, whatever the
    /// hasher of the map the `safetensors` crate takes.
    #[test]
    fn the_same_tensors_make_the_same_bytes() {
        let dir = std::env::temp_dir().join(format!("laconic-same-bytes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tensors = [(
            "w".to_string(),
            TensorSource::from_data(TensorData::new(vec![1f32, 2.0, 3.0], [3])),
        )];
        let files: Vec<Vec<u8>> = (0..8)
            .map(|i| {
                let path = dir.join(format!("{i}.safetensors"));
                write_tensors(&path, &tensors).unwrap();
                std::fs::read(path).unwrap()
            })
            .collect();
        assert!(files.iter().all(|bytes| *bytes == files[0]));
        let header = String::from_utf8_lossy(&files[0][8..]).into_owned();
        assert!(
            header.starts_with(r#"{"__metadata__":{"format":"pt","producer":"laconic"}"#),
            "{header}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temporary_file_sits_next_to_the_target() {
        let tmp = temp_path(Path::new("ckpt/step_3/optim.safetensors"));
        assert_eq!(tmp.parent(), Some(Path::new("ckpt/step_3")));
        assert!(tmp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".optim.safetensors.tmp"));
    }
}
