//! Saving and restoring a [`PolicyUpdater`]'s state: AdamW's moments (in their dtype) and step
//! counts by parameter name, and the updater's counters (I64), as one safetensors file.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use laconic_model::safetensors::{write_tensors, SafetensorsIndex, TensorSource};
use laconic_model::CausalLm;

use super::PolicyUpdater;
use crate::adamw::{counter, NamedTensors};
use crate::collective::Collective;
use crate::error::{Error, Result};
use crate::head::LogprobBackend;
use crate::logprob::head_weight;
use crate::zero::gather_state;

/// The optimizer state as named tensors (AdamW's moments and step counts by parameter name), whole
/// parameters as one process holds them: what a checkpoint stores.
#[derive(Debug, Clone)]
pub struct OptimizerState(NamedTensors);

/// Version tag of the optimizer state file: 2 since counters are I64 tensors (1: f32 counters,
/// exact below 2^24, still read).
const STATE_FORMAT: u64 = 2;
/// State formats [`PolicyUpdater::load_state`] reads.
const READ_FORMATS: [u64; 2] = [1, 2];

impl<B: LogprobBackend> PolicyUpdater<B> {
    /// Writes the optimizer state (AdamW moments by parameter name, step counts, the schedule's and
    /// the shuffle's positions) to `path` as safetensors, atomically: a temporary file in the same
    /// folder, then a rename. One process; a data-parallel run gathers the state on every worker
    /// first ([`PolicyUpdater::gather_state`]) and one worker writes it
    /// ([`PolicyUpdater::write_state`]).
    ///
    /// # Errors
    /// When the file cannot be written, or the state is a ZeRO shard.
    pub fn save_state(&self, path: impl AsRef<Path>) -> Result<()> {
        let tensors = self.optimizer.to_tensors()?;
        self.write_state(OptimizerState(tensors), path)
    }

    /// The optimizer state as one process would hold it, on worker 0 (the others get `None`):
    /// worker 0's own state, or under ZeRO the workers' shards gathered into whole parameters.
    /// Every worker of a data-parallel run calls this with the same model.
    ///
    /// # Errors
    /// The collective's.
    pub fn gather_state(
        &self,
        model: &CausalLm<B>,
        collective: &dyn Collective<B::InnerBackend>,
    ) -> Result<Option<OptimizerState>> {
        if !self.is_sharded(collective) {
            if collective.rank() != 0 {
                return Ok(None);
            }
            return self.optimizer.to_tensors().map(|t| Some(OptimizerState(t)));
        }
        let gathered = gather_state::<B, _>(
            &self.optimizer,
            model,
            collective,
            (self.config.allreduce_bucket_elems(), 0),
        )?;
        Ok(gathered.map(OptimizerState))
    }

    /// Writes `state` (from [`PolicyUpdater::gather_state`]) with this updater's counters to
    /// `path`, as [`PolicyUpdater::save_state`] does.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_state(&self, state: OptimizerState, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let counter = |n: u64| {
            let n = i64::try_from(n).expect("a counter fits in an i64");
            TensorData::new(vec![n], [1])
        };
        let mut tensors = state.0;
        tensors.push(("meta.format".into(), counter(STATE_FORMAT)));
        tensors.push(("meta.updates".into(), counter(self.updates)));
        tensors.push(("meta.batches".into(), counter(self.batches)));
        let sources: Vec<_> = tensors
            .into_iter()
            .map(|(name, data)| (name, TensorSource::from_data(data)))
            .collect();
        write_tensors(path, &sources).map_err(|e| state_error(path, &e.to_string()))
    }

    /// Restores the state written by [`PolicyUpdater::save_state`]. Every parameter with saved moments
    /// must exist in `model` with the same shape.
    ///
    /// # Errors
    /// When the file is unreadable, of another format, or does not match the model.
    pub fn load_state(&mut self, path: impl AsRef<Path>, model: &CausalLm<B>) -> Result<()> {
        let path = path.as_ref();
        let index = SafetensorsIndex::from_files(&[path.to_path_buf()])
            .map_err(|e| state_error(path, &e.to_string()))?;
        let mut tensors = BTreeMap::new();
        for name in index.names() {
            let data = index
                .read_data(name)
                .map_err(|e| state_error(path, &e.to_string()))?;
            tensors.insert(name.to_string(), data);
        }
        let meta = |key: &str| {
            let data = tensors
                .get(key)
                .ok_or_else(|| state_error(path, &format!("missing `{key}`")))?;
            counter(data).map_err(|e| state_error(path, &format!("`{key}`: {e}")))
        };
        if !READ_FORMATS.contains(&meta("meta.format")?) {
            return Err(state_error(path, "unknown state format"));
        }
        let (updates, batches) = (meta("meta.updates")?, meta("meta.batches")?);
        // The model's shapes, with no parameter copied to the host.
        let shapes: BTreeMap<String, Vec<usize>> = laconic_model::tensor_sources(model)
            .into_iter()
            .map(|(name, source)| (name, source.shape().to_vec()))
            .collect();
        for (key, data) in &tensors {
            let shape = data.shape.as_slice();
            if let Some(name) = key.strip_prefix("exp_avg.") {
                match shapes.get(name) {
                    Some(expected) if expected.as_slice() == shape => {}
                    Some(expected) => {
                        return Err(state_error(
                            path,
                            &format!("`{name}` has shape {shape:?}, the model's is {expected:?}"),
                        ))
                    }
                    None => {
                        return Err(state_error(
                            path,
                            &format!("the model has no parameter `{name}`"),
                        ))
                    }
                }
            }
        }
        let device = head_weight(model).device();
        self.optimizer
            .load_tensors(&tensors, &device)
            .map_err(|e| state_error(path, &e.to_string()))?;
        self.updates = updates;
        self.batches = batches;
        Ok(())
    }
}

fn state_error(path: &Path, message: &str) -> Error {
    Error::State {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OptimConfig;

    /// Issue "real checkpoints": counters were f32, so a run past 2^24 updates could not be saved.
    /// They are I64 now and come back exact past 2^24; a state file of the older format (f32
    /// counters, `meta.format` 1) still loads.
    #[test]
    fn counters_past_2_pow_24_round_trip_exactly_and_old_files_load() {
        type AD = burn::backend::Autodiff<crate::TestBackend>;
        let config = laconic_model::DecoderConfig::from_json_str(
            r#"{"model_type": "qwen3", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 12,
                "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                "head_dim": 4}"#,
            "<tiny>",
        )
        .unwrap();
        let model = CausalLm::<AD>::init(&config, &Default::default()).unwrap();
        let dir = std::env::temp_dir().join(format!("laconic-counters-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("optim.safetensors");
        let mut updater = PolicyUpdater::new(OptimConfig::default(), &model).unwrap();
        (updater.updates, updater.batches) = ((1 << 24) + 1, (1 << 40) + 3);
        updater.save_state(&path).unwrap();
        let mut resumed = PolicyUpdater::new(OptimConfig::default(), &model).unwrap();
        resumed.load_state(&path, &model).unwrap();
        assert_eq!(
            (resumed.updates, resumed.batches),
            ((1 << 24) + 1, (1 << 40) + 3)
        );

        let old = [
            ("meta.format", 1.0f32),
            ("meta.updates", 6.0),
            ("meta.batches", 2.0),
        ]
        .map(|(name, v)| {
            (
                name.to_string(),
                TensorSource::from_data(TensorData::new(vec![v], [1])),
            )
        });
        write_tensors(&path, &old).unwrap();
        resumed.load_state(&path, &model).unwrap();
        assert_eq!((resumed.updates, resumed.batches), (6, 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
