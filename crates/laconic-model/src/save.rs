//! Writing a [`CausalLm`] as a Hugging Face checkpoint folder, in the dtype each parameter holds.
//!
//! The weights are written by [`crate::safetensors::write_sharded`] in transformers' layout (one
//! `model.safetensors`, or shards and `model.safetensors.index.json`), each parameter copied to the
//! host only when its turn comes, so a save holds one tensor on the host at a time.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use crate::error::{Error, Result};
use crate::load::{enter, exit};
use crate::model::CausalLm;
use crate::safetensors::{write_sharded, TensorSource, DEFAULT_MAX_SHARD_BYTES};

/// Writes `model` as an HF checkpoint folder: `config.json` and the weights in the dtype each
/// parameter holds (F32, or BF16/F16 for a model cast to half precision), loadable by this crate and
/// by `transformers`: one `model.safetensors` below 5 GB, else transformers' shards and index
/// ([`save_pretrained_sharded`] with [`DEFAULT_MAX_SHARD_BYTES`]). LoRA adapters are merged into the
/// weights first (use [`CausalLm::save_adapter`] for the adapter alone).
///
/// # Errors
/// As [`save_pretrained_sharded`].
pub fn save_pretrained<B: Backend>(model: &CausalLm<B>, dir: impl AsRef<Path>) -> Result<()> {
    save_pretrained_sharded(model, dir, DEFAULT_MAX_SHARD_BYTES)
}

/// [`save_pretrained`] with shards of at most `max_shard_bytes` (a tensor larger than that gets a
/// shard of its own): `model-00001-of-0000n.safetensors`, … and `model.safetensors.index.json`,
/// or one `model.safetensors` when the weights fit in one shard
/// ([`crate::safetensors::write_sharded`], which also removes the shards of an earlier laconic
/// save in `dir` that the new one does not name). Parameters are copied to the host one at a time,
/// as each is written.
///
/// # Errors
/// When the folder or files cannot be written, or when a sharded save would sit beside a
/// `model.safetensors` laconic did not write.
pub fn save_pretrained_sharded<B: Backend>(
    model: &CausalLm<B>,
    dir: impl AsRef<Path>,
    max_shard_bytes: u64,
) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config_path = dir.join("config.json");
    let config = serde_json::to_string_pretty(model.config()).map_err(|source| Error::Json {
        path: config_path.clone(),
        source,
    })?;
    std::fs::write(&config_path, config).map_err(|e| Error::io(&config_path, e))?;
    let tensors = match model.lora() {
        Some(_) => tensor_sources(&model.merged()),
        None => tensor_sources(model),
    };
    write_sharded(dir, tensors, max_shard_bytes)
}

/// Every float parameter of a module with its dotted path, as a [`TensorSource`] that copies it to
/// the host (in its dtype) only when written.
pub fn tensor_sources<B: Backend, M: Module<B>>(
    module: &M,
) -> Vec<(String, TensorSource<'static>)> {
    struct Sources {
        path: Vec<String>,
        tensors: Vec<(String, TensorSource<'static>)>,
    }
    impl<B: Backend> ModuleVisitor<B> for Sources {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            enter(&mut self.path, name, container_type);
        }

        fn exit_module(&mut self, _name: &str, container_type: &str) {
            exit(&mut self.path, container_type);
        }

        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let source = TensorSource::from_tensor(param.val());
            self.tensors.push((self.path.join("."), source));
        }
    }
    let mut sources = Sources {
        path: Vec::new(),
        tensors: Vec::new(),
    };
    module.visit(&mut sources);
    sources.tensors
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use burn::module::ModuleMapper;
    use burn::tensor::FloatDType;

    use super::*;
    use crate::safetensors::{SafetensorsIndex, INDEX_FILE, SINGLE_FILE};
    use crate::{load_model, named_tensors, DecoderConfig, TestBackend as B};

    const DENSE: &str = r#"{"model_type": "qwen3", "vocab_size": 64, "hidden_size": 32,
        "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 8, "tie_word_embeddings": false}"#;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("laconic-save-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Casts every float parameter to bf16.
    struct ToBf16;

    impl<B: Backend> ModuleMapper<B> for ToBf16 {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            param.map(|t| t.cast(FloatDType::BF16))
        }
    }

    /// Bytes of the tensors' data in the checkpoint of `dir` (headers left out).
    fn data_bytes(dir: &Path) -> u64 {
        let index = SafetensorsIndex::from_dir(dir).unwrap();
        let entries = index.names().into_iter().map(|n| index.get(n).unwrap());
        entries.map(|e| e.end - e.start).sum()
    }

    /// A model whose parameters are bf16 (Flex holds bf16 tensors; ndarray does not) saves BF16
    /// tensors, half the data of the f32 save, and loads back to the same (bf16-rounded) values.
    #[test]
    fn a_bf16_model_saves_half_the_bytes_of_its_f32_save() {
        type F = burn::backend::Flex;
        let config = DecoderConfig::from_json_str(DENSE, "test").unwrap();
        let model = CausalLm::<F>::init(&config, &Default::default()).unwrap();
        let half = model.clone().map(&mut ToBf16);
        let (f32_dir, bf16_dir) = (scratch("f32"), scratch("bf16"));
        save_pretrained(&model, &f32_dir).unwrap();
        save_pretrained(&half, &bf16_dir).unwrap();
        let index = SafetensorsIndex::from_dir(&bf16_dir).unwrap();
        let embed = index.get("model.embed_tokens.weight").unwrap();
        assert_eq!(embed.dtype, crate::safetensors::Dtype::BF16);
        let (f32_bytes, bf16_bytes) = (data_bytes(&f32_dir), data_bytes(&bf16_dir));
        assert_eq!(2 * bf16_bytes, f32_bytes);
        let file_len = |dir: &Path| std::fs::metadata(dir.join(SINGLE_FILE)).unwrap().len();
        eprintln!(
            "f32 save: {} bytes ({f32_bytes} of data); bf16 save: {} bytes ({bf16_bytes} of data)",
            file_len(&f32_dir),
            file_len(&bf16_dir)
        );
        let loaded = load_model::<B>(&bf16_dir, &Default::default()).unwrap();
        assert_eq!(named_tensors(&loaded), named_tensors(&half));
        std::fs::remove_dir_all(&f32_dir).unwrap();
        std::fs::remove_dir_all(&bf16_dir).unwrap();
    }

    /// A save split into small shards writes transformers' index (`metadata.total_size`,
    /// `weight_map`) and loads back equal; saving again in one file removes the shards.
    #[test]
    fn a_sharded_save_loads_back_equal() {
        let dir = scratch("sharded");
        let config = DecoderConfig::from_json_str(DENSE, "test").unwrap();
        let model = CausalLm::<B>::init(&config, &Default::default()).unwrap();
        save_pretrained_sharded(&model, &dir, 4096).unwrap();
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(INDEX_FILE)).unwrap()).unwrap();
        let tensors = named_tensors(&model);
        let total: usize = tensors.iter().map(|(_, _, v)| 4 * v.len()).sum();
        assert_eq!(index["metadata"]["total_size"], total);
        let weight_map = index["weight_map"].as_object().unwrap();
        assert_eq!(weight_map.len(), tensors.len());
        let shards: std::collections::BTreeSet<&str> =
            weight_map.values().map(|v| v.as_str().unwrap()).collect();
        let count = shards.len();
        assert!(count > 2, "{count} shards");
        assert!(shards.contains(format!("model-00002-of-{count:05}.safetensors").as_str()));
        assert!(!dir.join(SINGLE_FILE).exists());
        let loaded = load_model::<B>(&dir, &Default::default()).unwrap();
        assert_eq!(named_tensors(&loaded), tensors);

        save_pretrained(&model, &dir).unwrap();
        for shard in shards {
            assert!(!dir.join(shard).exists(), "{shard} left behind");
        }
        assert!(!dir.join(INDEX_FILE).exists());
        let loaded = load_model::<B>(&dir, &Default::default()).unwrap();
        assert_eq!(named_tensors(&loaded), tensors);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
