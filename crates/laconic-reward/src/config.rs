//! The `[reward]` section: which shaper, with which knobs.
//!
//! A TOML table selects a shaper by `kind`; every other key is that shaper's knob, defaulted
//! when absent, and an unknown key is an error (a typo in a knob would silently change the
//! experiment):
//!
//! ```toml
//! [reward]
//! kind = "truncation"   # 1[c]·1[L ≤ L_T], the paper's choice
//! l_t = 8192
//! mask = "none"         # none | incorrect | long_correct | long_correct_short_incorrect | long_correct_long_incorrect
//! ```
//!
//! | `kind` | knobs (defaults) |
//! |---|---|
//! | `correctness` | — |
//! | `truncation` | `l_t = 8192`, `mask = "none"` |
//! | `adaptive_truncation` | `percentile = 90`, `scope = "group"` (`"batch"`), `fallback_l_t = 8192`, `mask = "none"` |
//! | `kimi` | `alpha = 0.4` |
//! | `laser` | `l_t = 4096`, `alpha = 0.4` |
//! | `laser_d` | `l_t = 4096`, `alpha = 0.4` |
//! | `dapo_overlong` | `l_max = 20480`, `l_cache = 4096`, `incorrect_reward = -1.0` |
//! | `l1` | `alpha = 0.0003`, `default_target` (none) |
//! | `alp` | `beta = 0.0001` |
//! | `cosine` | `l_max = 8192`, `correct_at_zero = 1.0`, `correct_at_max = 0.5`, `wrong_at_zero = -1.0`, `wrong_at_max = -0.5`, `exceed_reward` (none) |
//! | `arora_zanette` | `alpha = 0.1` |
//! | `grpo_lead` | `alpha = 0.05`, `incorrect_reward = -1.0` |
//!
//! Besides the shaper's knobs the table takes `extract = "boxed" | "math_verify"`
//! ([`RewardSection`]): how answers are found in responses (default `boxed`, strict).

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::extract::{ExtractMode, ExtractOptions};
use crate::group::{GroupView, Scored};
use crate::judge::MathJudge;
use crate::shapers::{
    AdaptiveTruncation, Alp, AroraZanette, Correctness, Cosine, DapoOverlong, GrpoLead, Kimi,
    Laser, LaserD, RewardFn, Truncation, L1,
};

/// Declares [`RewardConfig`] from one table of `name => Variant(Shaper)`, with everything that is
/// one match arm per kind (the name list, [`RewardConfig::kind`], [`RewardConfig::from_knobs`], the
/// shaper behind a config), so adding a reward is one line here.
macro_rules! reward_kinds {
    ($($(#[$doc:meta])* $name:literal => $variant:ident($shaper:ident),)+) => {
        /// The reward shaper and its knobs; the serde tag `kind` is the name users write.
        ///
        /// Deserialised by hand (see [`RewardConfig::from_knobs`]) so that an error inside a shaper's
        /// table names its key (`` `l_t`: invalid value … ``), which serde's derived internally tagged
        /// enums cannot do.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "kind")]
        pub enum RewardConfig {
            $($(#[$doc])* #[serde(rename = $name)] $variant($shaper),)+
        }

        /// The valid `kind` names, for messages and `--help`.
        pub const REWARD_KINDS: &[&str] = &[$($name),+];

        impl RewardConfig {
            /// The `kind` name.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(RewardConfig::$variant(_) => $name,)+
                }
            }

            /// The shaper `kind` with `knobs` (every other key of the `[reward]` table), defaulted
            /// where absent.
            ///
            /// # Errors
            /// An unknown kind (listing the valid ones), or an unknown or ill-typed knob, as a message
            /// that starts with the knob in backticks.
            pub fn from_knobs(
                kind: &str,
                knobs: Map<String, Value>,
            ) -> std::result::Result<Self, String> {
                Ok(match kind {
                    $($name => RewardConfig::$variant(knobs_of(knobs)?),)+
                    other => {
                        return Err(format!(
                            "`kind`: unknown reward `{other}`, expected one of {}",
                            REWARD_KINDS.join(", ")
                        ))
                    }
                })
            }

            fn shaper(&self) -> &dyn RewardFn {
                match self {
                    $(RewardConfig::$variant(r) => r,)+
                }
            }
        }
    };
}

reward_kinds! {
    /// `1[c]` ([`Correctness`]).
    "correctness" => Correctness(Correctness),
    /// `1[c]·1[L ≤ L_T]` with masking ([`Truncation`]).
    "truncation" => Truncation(Truncation),
    /// Truncation with `L_T` a percentile of correct lengths ([`AdaptiveTruncation`]).
    "adaptive_truncation" => AdaptiveTruncation(AdaptiveTruncation),
    /// Kimi-1.5 ([`Kimi`]).
    "kimi" => Kimi(Kimi),
    /// Laser ([`Laser`]).
    "laser" => Laser(Laser),
    /// Laser-D, eq. 6 ([`LaserD`]).
    "laser_d" => LaserD(LaserD),
    /// DAPO soft overlong punishment ([`DapoOverlong`]).
    "dapo_overlong" => DapoOverlong(DapoOverlong),
    /// L1 / LCPO-Exact ([`L1`]).
    "l1" => L1(L1),
    /// ALP ([`Alp`]).
    "alp" => Alp(Alp),
    /// Cosine, Yeo et al. ([`Cosine`]).
    "cosine" => Cosine(Cosine),
    /// Arora–Zanette ([`AroraZanette`]).
    "arora_zanette" => AroraZanette(AroraZanette),
    /// GRPO-LEAD ([`GrpoLead`]).
    "grpo_lead" => GrpoLead(GrpoLead),
}

/// The default is the paper's choice: the truncation reward, `L_T = 8192`, no mask.
impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig::Truncation(Truncation::default())
    }
}

impl<'de> Deserialize<'de> for RewardConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let mut table = Map::<String, Value>::deserialize(deserializer)?;
        let kind = match table.remove("kind") {
            Some(Value::String(kind)) => kind,
            Some(other) => {
                return Err(D::Error::custom(format_args!(
                    "`kind`: expected a string, found `{other}`"
                )))
            }
            None => return Err(D::Error::missing_field("kind")),
        };
        Self::from_knobs(&kind, table).map_err(D::Error::custom)
    }
}

/// Deserialises one shaper's knobs, naming the key of the first bad one.
fn knobs_of<T: DeserializeOwned>(knobs: Map<String, Value>) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(Value::Object(knobs)).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("`{path}`: {}", e.inner())
        }
    })
}

/// Scores for a rollout batch and the `L_T` each group used (for the trainer's logs).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchScores {
    /// One `Vec<Scored>` per group, in order.
    pub scores: Vec<Vec<Scored>>,
    /// The effective target length per group (`None` for rewards without one).
    pub l_t: Vec<Option<f64>>,
}

impl RewardConfig {
    /// The knob names of shaper `kind` (`None` for an unknown kind): what a `[reward]` table of that
    /// kind may hold besides `kind`.
    pub fn knobs(kind: &str) -> Option<Vec<String>> {
        let default = Self::from_knobs(kind, Map::new()).ok()?;
        match serde_json::to_value(default) {
            Ok(Value::Object(fields)) => Some(
                fields
                    .into_iter()
                    .map(|(k, _)| k)
                    .filter(|k| k != "kind")
                    .collect(),
            ),
            _ => None,
        }
    }

    /// One score per rollout of one group (see [`RewardFn::score_group`]). With adaptive `L_T`
    /// in `batch` scope a lone group is its own batch.
    pub fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        self.shaper().score_group(group)
    }

    /// The trainer's entry point: scores for every group of a rollout batch, in order (batch
    /// statistics such as adaptive `L_T` with `scope = "batch"` see all groups).
    pub fn score_batch(&self, groups: &[GroupView]) -> Vec<Vec<Scored>> {
        self.shaper().score_batch(groups)
    }

    /// The target length `L_T` each group was scored with, for logging (`None` where the
    /// reward has none).
    pub fn effective_l_t(&self, groups: &[GroupView]) -> Vec<Option<f64>> {
        self.shaper().effective_l_t(groups)
    }

    /// Score a batch and report each group's effective `L_T`.
    pub fn score_batch_detailed(&self, groups: &[GroupView]) -> BatchScores {
        BatchScores {
            scores: self.score_batch(groups),
            l_t: self.effective_l_t(groups),
        }
    }

    /// Check every knob is in its domain, naming the first bad key as `reward.<key>`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero length, a percentile outside `[0, 100]`,
    /// `l_cache > l_max`, or a non-finite or negative coefficient.
    pub fn validate(&self) -> Result<()> {
        fn positive(key: &str, v: usize) -> Result<()> {
            if v == 0 {
                return Err(bad(key, "a positive integer", v));
            }
            Ok(())
        }
        fn coef(key: &str, v: f64) -> Result<()> {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(key, "a finite non-negative number", v));
            }
            Ok(())
        }
        fn finite(key: &str, v: f64) -> Result<()> {
            if !v.is_finite() {
                return Err(bad(key, "a finite number", v));
            }
            Ok(())
        }
        match self {
            RewardConfig::Correctness(_) => Ok(()),
            RewardConfig::Truncation(r) => positive("l_t", r.l_t),
            RewardConfig::AdaptiveTruncation(r) => {
                if !(0.0..=100.0).contains(&r.percentile) {
                    return Err(bad("percentile", "a number in [0, 100]", r.percentile));
                }
                positive("fallback_l_t", r.fallback_l_t)
            }
            RewardConfig::Kimi(r) => coef("alpha", r.alpha),
            RewardConfig::Laser(Laser { l_t, alpha })
            | RewardConfig::LaserD(LaserD { l_t, alpha }) => {
                positive("l_t", *l_t)?;
                coef("alpha", *alpha)
            }
            RewardConfig::DapoOverlong(r) => {
                positive("l_max", r.l_max)?;
                if r.l_cache > r.l_max {
                    return Err(bad("l_cache", "at most `l_max`", r.l_cache));
                }
                finite("incorrect_reward", r.incorrect_reward)
            }
            RewardConfig::L1(r) => coef("alpha", r.alpha),
            RewardConfig::Alp(r) => coef("beta", r.beta),
            RewardConfig::Cosine(r) => {
                positive("l_max", r.l_max)?;
                finite("correct_at_zero", r.correct_at_zero)?;
                finite("correct_at_max", r.correct_at_max)?;
                finite("wrong_at_zero", r.wrong_at_zero)?;
                finite("wrong_at_max", r.wrong_at_max)?;
                r.exceed_reward
                    .map_or(Ok(()), |e| finite("exceed_reward", e))
            }
            RewardConfig::AroraZanette(r) => coef("alpha", r.alpha),
            RewardConfig::GrpoLead(r) => {
                coef("alpha", r.alpha)?;
                finite("incorrect_reward", r.incorrect_reward)
            }
        }
    }
}

fn bad(key: &str, expected: &str, found: impl std::fmt::Display) -> Error {
    Error::InvalidConfig {
        key: format!("reward.{key}"),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

impl RewardFn for RewardConfig {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        RewardConfig::score_group(self, group)
    }

    fn score_batch(&self, groups: &[GroupView]) -> Vec<Vec<Scored>> {
        RewardConfig::score_batch(self, groups)
    }

    fn effective_l_t(&self, groups: &[GroupView]) -> Vec<Option<f64>> {
        RewardConfig::effective_l_t(self, groups)
    }
}

/// The whole `[reward]` table: the shaper (`kind` and its knobs) and how answers are extracted
/// (`extract`, default `boxed`). Reads and writes as one flat table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RewardSection {
    /// The shaper and its knobs.
    pub shaper: RewardConfig,
    /// How answers are found in responses: strict `boxed` (the RL default) or `math_verify`.
    pub extract: ExtractMode,
}

/// The key of [`RewardSection::extract`] in the `[reward]` table.
pub const EXTRACT_KEY: &str = "extract";

impl RewardSection {
    /// The keys a `[reward]` table of shaper `kind` may hold besides `kind` (its knobs and
    /// `extract`); `None` for an unknown kind.
    pub fn keys(kind: &str) -> Option<Vec<String>> {
        let mut keys = RewardConfig::knobs(kind)?;
        keys.push(EXTRACT_KEY.to_string());
        Some(keys)
    }

    /// The math judge this section describes.
    pub fn judge(&self) -> MathJudge {
        MathJudge {
            extract: ExtractOptions {
                mode: self.extract,
                ..ExtractOptions::default()
            },
            ..MathJudge::default()
        }
    }
}

impl Serialize for RewardSection {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut table = match serde_json::to_value(&self.shaper).map_err(S::Error::custom)? {
            Value::Object(table) => table,
            other => {
                return Err(S::Error::custom(format_args!(
                    "a reward table, not `{other}`"
                )))
            }
        };
        let extract = serde_json::to_value(self.extract).map_err(S::Error::custom)?;
        table.insert(EXTRACT_KEY.into(), extract);
        table.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RewardSection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let mut table = Map::<String, Value>::deserialize(deserializer)?;
        let extract = match table.remove(EXTRACT_KEY) {
            None => ExtractMode::default(),
            Some(value) => serde_json::from_value(value)
                .map_err(|e| D::Error::custom(format_args!("`{EXTRACT_KEY}`: {e}")))?,
        };
        let shaper = RewardConfig::deserialize(Value::Object(table)).map_err(D::Error::custom)?;
        Ok(Self { shaper, extract })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::Judge;
    use crate::shapers::{AdaptiveScope, TruncationMask};

    #[test]
    fn the_section_takes_the_extraction_mode_beside_the_shaper() {
        #[derive(Debug, Deserialize)]
        struct File {
            reward: RewardSection,
        }
        let section = |s: &str| toml::from_str::<File>(s).map(|f| f.reward);
        let strict = section("[reward]\nkind = \"truncation\"\nl_t = 64\n").unwrap();
        assert_eq!(strict.extract, ExtractMode::Boxed);
        assert_eq!(strict.shaper.kind(), "truncation");
        let free = section("[reward]\nkind = \"kimi\"\nextract = \"math_verify\"\n").unwrap();
        assert_eq!(free.extract, ExtractMode::MathVerify);
        assert_eq!(free.shaper, RewardConfig::Kimi(Kimi::default()));
        assert_eq!(
            RewardSection::keys("kimi").unwrap(),
            ["alpha".to_string(), EXTRACT_KEY.to_string()]
        );
        // The judge follows the mode: an unboxed answer counts only in `math_verify`.
        let unboxed = "So the answer is $7$.";
        assert!(free.judge().judge(unboxed, "7").is_correct());
        assert_eq!(strict.judge().judge(unboxed, "7").correct, None);
        // Written back as one flat table, read back the same.
        let text = toml::to_string(&serde_json::json!({ "reward": free })).unwrap();
        assert!(text.contains("extract = \"math_verify\""), "{text}");
        assert_eq!(section(&text).unwrap(), free);
        // Errors name the key.
        let err = section("[reward]\nkind = \"kimi\"\nextract = \"regex\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("`extract`: unknown variant `regex`"),
            "{err}"
        );
        let err = section("[reward]\nkind = \"kimi\"\nl_t = 5\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `l_t`"), "{err}");
    }

    #[derive(Debug, Deserialize)]
    struct Run {
        reward: RewardConfig,
    }

    fn parse(s: &str) -> std::result::Result<RewardConfig, toml::de::Error> {
        toml::from_str::<Run>(s).map(|r| r.reward)
    }

    #[test]
    fn toml_selects_kind_and_defaults_the_rest() {
        let r =
            parse("[reward]\nkind = \"truncation\"\nl_t = 4096\nmask = \"long_correct\"").unwrap();
        assert_eq!(
            r,
            RewardConfig::Truncation(Truncation {
                l_t: 4096,
                mask: TruncationMask::LongCorrect
            })
        );
        let r = parse("[reward]\nkind = \"adaptive_truncation\"\nscope = \"batch\"").unwrap();
        assert_eq!(
            r,
            RewardConfig::AdaptiveTruncation(AdaptiveTruncation {
                scope: AdaptiveScope::Batch,
                ..AdaptiveTruncation::default()
            })
        );
        assert_eq!(
            parse("[reward]\nkind = \"kimi\"").unwrap(),
            RewardConfig::Kimi(Kimi::default())
        );
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in REWARD_KINDS {
            let r = parse(&format!("[reward]\nkind = \"{kind}\"")).unwrap();
            assert_eq!(r.kind(), *kind);
            r.validate().unwrap();
            let back: RewardConfig = toml::from_str(&toml::to_string(&r).unwrap()).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn mask_names_round_trip() {
        for (name, mask) in [
            ("none", TruncationMask::None),
            ("incorrect", TruncationMask::Incorrect),
            ("long_correct", TruncationMask::LongCorrect),
            (
                "long_correct_short_incorrect",
                TruncationMask::LongCorrectShortIncorrect,
            ),
            (
                "long_correct_long_incorrect",
                TruncationMask::LongCorrectLongIncorrect,
            ),
        ] {
            let r = parse(&format!(
                "[reward]\nkind = \"truncation\"\nmask = \"{name}\""
            ))
            .unwrap();
            assert_eq!(r, RewardConfig::Truncation(Truncation { l_t: 8192, mask }));
        }
    }

    #[test]
    fn typos_are_errors_that_name_the_key() {
        let e = parse("[reward]\nkind = \"truncation\"\nl_tt = 4096")
            .unwrap_err()
            .to_string();
        assert!(e.contains("l_tt"), "{e}");
        let e = parse("[reward]\nkind = \"truncaton\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncaton"), "{e}");
        let e = parse("[reward]\nkind = \"truncation\"\nmask = \"some\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("some"), "{e}");
    }

    /// Errors inside a shaper's table name the knob, not just `reward`.
    #[test]
    fn knob_errors_name_the_knob() {
        let e = parse("[reward]\nkind = \"truncation\"\nl_t = -5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`l_t`: invalid value: integer `-5`"), "{e}");
        let e = parse("[reward]\nkind = \"truncation\"\nmask = \"nope\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`mask`: unknown variant `nope`"), "{e}");
        let e = parse("[reward]\nkind = 3").unwrap_err().to_string();
        assert!(e.contains("`kind`: expected a string"), "{e}");
        let e = parse("[reward]\nl_t = 3").unwrap_err().to_string();
        assert!(e.contains("missing field `kind`"), "{e}");
    }

    #[test]
    fn knobs_of_each_kind() {
        assert_eq!(RewardConfig::knobs("truncation").unwrap(), ["l_t", "mask"]);
        assert_eq!(RewardConfig::knobs("kimi").unwrap(), ["alpha"]);
        assert_eq!(
            RewardConfig::knobs("l1").unwrap(),
            ["alpha", "default_target"]
        );
        assert!(RewardConfig::knobs("correctness").unwrap().is_empty());
        assert!(RewardConfig::knobs("nope").is_none());
        for kind in REWARD_KINDS {
            assert!(RewardConfig::knobs(kind).is_some(), "{kind}");
        }
    }

    #[test]
    fn validation() {
        let e = RewardConfig::Truncation(Truncation {
            l_t: 0,
            ..Truncation::default()
        })
        .validate();
        assert_eq!(
            e.unwrap_err().to_string(),
            "invalid reward config: `reward.l_t` expected a positive integer, found `0`"
        );
        let d = DapoOverlong {
            l_max: 10,
            l_cache: 20,
            ..DapoOverlong::default()
        };
        assert!(RewardConfig::DapoOverlong(d).validate().is_err());
        let a = AdaptiveTruncation {
            percentile: 150.0,
            ..AdaptiveTruncation::default()
        };
        assert!(RewardConfig::AdaptiveTruncation(a).validate().is_err());
        assert!(RewardConfig::Kimi(Kimi { alpha: f64::NAN })
            .validate()
            .is_err());
    }

    #[test]
    fn batch_entry_point_and_l_t() {
        use crate::group::Finish;
        let groups = vec![
            GroupView::new([(true, 10, Finish::Stop), (false, 20, Finish::Stop)]),
            GroupView::new(std::iter::empty()),
        ];
        let r = RewardConfig::Truncation(Truncation {
            l_t: 15,
            mask: TruncationMask::None,
        });
        let b = r.score_batch_detailed(&groups);
        assert_eq!(b.scores.len(), 2);
        assert_eq!(b.scores[0], vec![Scored::reward(1.0), Scored::reward(0.0)]);
        assert!(b.scores[1].is_empty());
        assert_eq!(b.l_t, vec![Some(15.0), Some(15.0)]);
        assert_eq!(
            RewardConfig::Kimi(Kimi::default()).effective_l_t(&groups),
            vec![None, None]
        );
    }
}
