//! Loading Hugging Face checkpoint folders into [`CausalLm`] (writing them: [`crate::save_pretrained`]).
//!
//! The module tree's field names are HF's parameter names, so a parameter's path in the tree
//! (`model.layers.0.self_attn.q_proj.weight`) is its key in the checkpoint. Loading walks the tree
//! with a [`ModuleMapper`], replacing each lazily-initialised parameter with the checkpoint tensor
//! (never sampling the random init); saving walks it with a [`ModuleVisitor`] ([`crate::tensor_sources`]). Enum variants (a layer's
//! `mlp` is `FeedForward::Dense` or `FeedForward::Sparse`) add no path segment, so both read HF's keys.
//!
//! Before the model is built, [`check_checkpoint`] compares the checkpoint's tensor list and shapes
//! (from the safetensors headers, no data read) with the model `config.json` describes, one decoder
//! layer at a time: a config that names more layers, experts or wider matrices than the files hold is
//! refused, naming the tensor and the file, before anything of the config's size is allocated.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use crate::config::DecoderConfig;
use crate::error::{Error, Result};
use crate::layer::DecoderLayer;
use crate::model::{CausalLm, INITIALIZER_RANGE};
use crate::safetensors::{SafetensorsIndex, TensorEntry};
use crate::tokenizer::Tokenizer;

/// A model loaded from an HF folder, with the folder's tokenizer when it has one.
#[derive(Debug)]
pub struct Pretrained<B: Backend> {
    /// The model.
    pub model: CausalLm<B>,
    /// `tokenizer.json` from the folder, if present.
    pub tokenizer: Option<Tokenizer>,
    /// The folder.
    pub dir: PathBuf,
}

/// Loads `config.json`, the weights (`model.safetensors` or a sharded index) and `tokenizer.json` (when
/// present) from an HF checkpoint folder. Weights stored as BF16/F16/F32 become the backend's float type.
///
/// # Errors
/// Missing or malformed files, an unsupported config, a missing tensor or a tensor of the wrong shape
/// (the error names the tensor, the file and both shapes).
pub fn load_pretrained<B: Backend>(
    dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<Pretrained<B>> {
    let dir = dir.as_ref();
    let model = load_model(dir, device)?;
    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = if tokenizer_path.is_file() {
        Some(Tokenizer::from_file(&tokenizer_path)?)
    } else {
        None
    };
    Ok(Pretrained {
        model,
        tokenizer,
        dir: dir.to_path_buf(),
    })
}

/// The file of generation defaults beside `config.json`, whose `eos_token_id` (one id or a list)
/// ends a generation (transformers' `generate` takes it over `config.json`'s).
pub const GENERATION_CONFIG: &str = "generation_config.json";

/// `config.json` of the folder `dir`, its `eos_token_id` replaced by `generation_config.json`'s when
/// that file names one.
///
/// # Errors
/// A missing or malformed `config.json`, or a malformed `generation_config.json`.
pub fn read_config(dir: &Path) -> Result<DecoderConfig> {
    let mut config = DecoderConfig::from_file(dir.join("config.json"))?;
    let path = dir.join(GENERATION_CONFIG);
    if path.is_file() {
        #[derive(serde::Deserialize)]
        struct Generation {
            #[serde(default)]
            eos_token_id: Option<crate::TokenIds>,
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let generation: Generation = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if let Some(eos) = generation.eos_token_id {
            config.eos_token_id = Some(eos);
        }
    }
    Ok(config)
}

/// Loads the model of an HF checkpoint folder (see [`load_pretrained`]).
///
/// # Errors
/// As [`load_pretrained`].
///
/// A PEFT adapter folder (`adapter_config.json`, [`crate::lora`]) loads the base model it names
/// (`base_model_name_or_path`) with the adapter applied.
pub fn load_model<B: Backend>(dir: impl AsRef<Path>, device: &B::Device) -> Result<CausalLm<B>> {
    let dir = dir.as_ref();
    if crate::lora::is_adapter_dir(dir) {
        return crate::lora::load_adapted(dir, device);
    }
    let config = read_config(dir)?;
    let index = SafetensorsIndex::from_dir(dir)?;
    check_checkpoint::<B>(&config, &index, dir, device)?;
    let model = CausalLm::init_lazy(&config, device)?;
    load_weights(model, &index, dir)
}

/// Checks that `index` (the checkpoint in `dir`) holds every tensor of the model `config` describes,
/// each with its shape, without reading tensor data or building the model: the parts outside the
/// decoder layers are checked on a model with no layers, then each layer on its own, built with
/// lazy (unallocated) parameters by the same code [`CausalLm::init_lazy`] runs. A mixture-of-experts
/// layer's router is checked before its experts are made, so `num_experts` is bounded by the file
/// too. What loading then allocates is bounded by the checkpoint's size.
///
/// # Errors
/// The first missing tensor ([`Error::MissingTensor`], naming the folder) or tensor of another shape
/// ([`Error::ShapeMismatch`], naming the file), in the model's order.
pub(crate) fn check_checkpoint<B: Backend>(
    config: &DecoderConfig,
    index: &SafetensorsIndex,
    dir: &Path,
    device: &B::Device,
) -> Result<()> {
    check_module(
        &CausalLm::<B>::init_lazy_layers(config, 0, device)?,
        "",
        index,
        dir,
    )?;
    for layer in 0..config.num_hidden_layers {
        let prefix = format!("model.layers.{layer}");
        if config.is_moe_layer(layer) {
            let router = [config.num_experts(), config.hidden_size];
            checked_entry(index, dir, &format!("{prefix}.mlp.gate.weight"), &router)?;
        }
        let module = DecoderLayer::<B>::init(config, layer, INITIALIZER_RANGE, device);
        check_module(&module, &prefix, index, dir)?;
    }
    Ok(())
}

/// Checks every float parameter of `module` (its paths under `prefix`) against `index`, from the
/// parameters' lazy shapes.
fn check_module<B: Backend, M: Module<B>>(
    module: &M,
    prefix: &str,
    index: &SafetensorsIndex,
    dir: &Path,
) -> Result<()> {
    let mut checker = ShapeChecker {
        index,
        dir,
        path: prefix
            .split('.')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        error: None,
    };
    module.visit(&mut checker);
    checker.error.map_or(Ok(()), Err)
}

/// Replaces every parameter of `model` with the tensor of the same name in `index`.
///
/// # Errors
/// The first missing tensor, shape mismatch or unreadable tensor.
pub fn load_weights<B: Backend>(
    model: CausalLm<B>,
    index: &SafetensorsIndex,
    dir: &Path,
) -> Result<CausalLm<B>> {
    let mut loader = Loader {
        index,
        dir,
        path: Vec::new(),
        error: None,
    };
    let model = model.map(&mut loader);
    match loader.error {
        Some(error) => Err(error),
        None => Ok(model),
    }
}

/// Every float parameter of a module with its dotted path, shape and values (f32).
pub fn named_tensors<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    crate::save::tensor_sources(module)
        .into_iter()
        .map(|(name, source)| {
            let values = source
                .data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("a float tensor converted to f32 yields f32 values");
            (name, source.shape().to_vec(), values)
        })
        .collect()
}

/// Enters a child module: its field name or index joins the path, except an enum variant's name
/// (burn's `Enum:` containers), so `mlp` is `mlp` whether the layer's feed-forward block is
/// `FeedForward::Dense` or `FeedForward::Sparse`, as in HF's checkpoints.
pub(crate) fn enter(path: &mut Vec<String>, name: &str, container_type: &str) {
    if !container_type.starts_with("Enum:") {
        path.push(name.to_string());
    }
}

/// Leaves a child module entered with [`enter`].
pub(crate) fn exit(path: &mut Vec<String>, container_type: &str) {
    if !container_type.starts_with("Enum:") {
        path.pop();
    }
}

struct Loader<'a> {
    index: &'a SafetensorsIndex,
    dir: &'a Path,
    path: Vec<String>,
    error: Option<Error>,
}

impl Loader<'_> {
    fn read<B: Backend, const D: usize>(
        &self,
        name: &str,
        expected: &[usize],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let values = read_checked(self.index, self.dir, name, expected)?;
        Ok(Tensor::from_data(
            TensorData::new(values, expected.to_vec()),
            device,
        ))
    }
}

/// The values of tensor `name` of `index` (files in `dir`), which must have shape `expected`.
///
/// # Errors
/// A missing tensor, another shape, or an unreadable file, each named.
pub(crate) fn read_checked(
    index: &SafetensorsIndex,
    dir: &Path,
    name: &str,
    expected: &[usize],
) -> Result<Vec<f32>> {
    checked_entry(index, dir, name, expected)?;
    index.read_f32(name)
}

/// The entry of tensor `name` of `index` (files in `dir`), which must have shape `expected`; no data
/// is read.
///
/// # Errors
/// A missing tensor or another shape, each named.
pub(crate) fn checked_entry<'a>(
    index: &'a SafetensorsIndex,
    dir: &Path,
    name: &str,
    expected: &[usize],
) -> Result<&'a TensorEntry> {
    let entry = index.get(name).ok_or_else(|| Error::MissingTensor {
        name: name.to_string(),
        expected: expected.to_vec(),
        dir: dir.to_path_buf(),
    })?;
    if entry.shape != expected {
        return Err(Error::ShapeMismatch {
            name: name.to_string(),
            path: entry.path.clone(),
            expected: expected.to_vec(),
            found: entry.shape.clone(),
        });
    }
    Ok(entry)
}

/// A tensor's shape and values as f32 on the host.
pub(crate) fn host_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let shape = tensor.dims().to_vec();
    let values = tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("a float tensor converted to f32 yields f32 values");
    (shape, values)
}

impl<B: Backend> ModuleMapper<B> for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        enter(&mut self.path, name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        exit(&mut self.path, container_type);
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self.error.is_some() {
            return param;
        }
        let name = self.path.join(".");
        let expected = param.lazy_shape().to_vec();
        let device = param.lazy_device();
        match self.read::<B, D>(&name, &expected, &device) {
            Ok(tensor) => {
                let id = param.id;
                param.transform_for_load(tensor, id)
            }
            Err(error) => {
                self.error = Some(error);
                param
            }
        }
    }
}

/// Checks each parameter's lazy shape against the checkpoint; keeps the first error.
struct ShapeChecker<'a> {
    index: &'a SafetensorsIndex,
    dir: &'a Path,
    path: Vec<String>,
    error: Option<Error>,
}

impl<B: Backend> ModuleVisitor<B> for ShapeChecker<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        enter(&mut self.path, name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        exit(&mut self.path, container_type);
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.error.is_some() {
            return;
        }
        let name = self.path.join(".");
        if let Err(error) = checked_entry(self.index, self.dir, &name, &param.lazy_shape().to_vec())
        {
            self.error = Some(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::save_pretrained;
    use crate::TestBackend as B;

    /// A scratch folder for one test, empty.
    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("laconic-load-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn generation_config_names_the_stop_ids() {
        let dir = scratch("generation");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"model_type": "qwen3", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
                "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                "head_dim": 8, "eos_token_id": 7}"#,
        )
        .unwrap();
        assert_eq!(read_config(&dir).unwrap().eos_token_ids(), [7]);
        std::fs::write(
            dir.join(GENERATION_CONFIG),
            r#"{"eos_token_id": [7, 9], "top_p": 0.8}"#,
        )
        .unwrap();
        assert_eq!(read_config(&dir).unwrap().eos_token_ids(), [7, 9]);
        std::fs::write(dir.join(GENERATION_CONFIG), r#"{"eos_token_id": "x"}"#).unwrap();
        let err = read_config(&dir).unwrap_err().to_string();
        assert!(err.contains(GENERATION_CONFIG), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A saved two-layer model whose `config.json` is then rewritten by `edit`.
    fn saved_with_config(
        tag: &str,
        config: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> PathBuf {
        let dir = scratch(tag);
        let config = DecoderConfig::from_json_str(config, "test").unwrap();
        let model = CausalLm::<B>::init(&config, &Default::default()).unwrap();
        save_pretrained(&model, &dir).unwrap();
        let path = dir.join("config.json");
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut json);
        std::fs::write(&path, json.to_string()).unwrap();
        dir
    }

    const DENSE: &str = r#"{"model_type": "qwen3", "vocab_size": 16, "hidden_size": 8,
        "intermediate_size": 12, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 4}"#;

    const MOE: &str = r#"{"model_type": "qwen3_moe", "vocab_size": 16, "hidden_size": 8,
        "intermediate_size": 12, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 4, "num_experts": 4, "num_experts_per_tok": 2,
        "moe_intermediate_size": 4}"#;

    /// Issue 32: a `config.json` naming far more layers than its checkpoint holds built every layer
    /// (gigabytes, or an allocation abort) before a tensor was found missing. The layer count here
    /// cannot be allocated at all, so only a check made before the model is built passes.
    #[test]
    fn a_config_with_more_layers_than_the_checkpoint_is_refused_before_allocating() {
        let dir = saved_with_config("layers", DENSE, |c| {
            c["num_hidden_layers"] = serde_json::json!(1u64 << 60)
        });
        let err = load_model::<B>(&dir, &Default::default()).unwrap_err();
        assert!(
            matches!(&err, Error::MissingTensor { name, .. } if name.starts_with("model.layers.2.")),
            "{err}"
        );
        assert!(
            err.to_string().contains(&dir.display().to_string()),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// As above for a mixture-of-experts layer's expert count: the router's shape in the file is
    /// checked before the experts are made.
    #[test]
    fn a_config_with_more_experts_than_the_checkpoint_is_refused_before_allocating() {
        let dir = saved_with_config("experts", MOE, |c| {
            c["num_experts"] = serde_json::json!(1u64 << 60)
        });
        let err = load_model::<B>(&dir, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`model.layers.0.mlp.gate.weight`")
                && err.contains("model.safetensors")
                && err.contains("[4, 8]"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A width the checkpoint does not have is named with the file and both shapes, and the
    /// unchanged config loads.
    #[test]
    fn a_config_with_another_width_names_the_tensor_file_and_shapes() {
        let dir = saved_with_config("width", DENSE, |c| {
            c["intermediate_size"] = serde_json::json!(1u64 << 40)
        });
        let err = load_model::<B>(&dir, &Default::default()).unwrap_err();
        let Error::ShapeMismatch {
            name,
            path,
            expected,
            found,
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(name, "model.layers.0.mlp.gate_proj.weight");
        assert_eq!(path, &dir.join("model.safetensors"));
        assert_eq!(
            (expected.as_slice(), found.as_slice()),
            (&[1 << 40, 8][..], &[12, 8][..])
        );
        std::fs::remove_dir_all(dir).unwrap();
        let dir = saved_with_config("same", MOE, |_| {});
        load_model::<B>(&dir, &Default::default()).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
