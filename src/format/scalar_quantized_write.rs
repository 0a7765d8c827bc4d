//! Writing the scalar int8 quantized storage of an optimized segment (§6.3), as Qdrant's
//! segment builder does (scalar quantization has no mutable form).
//!
//! Inside `vector_storage[-<name>]/`: `quantized.data` (one record per point, per inner vector
//! for multivectors, placeholders included: the `f32` vector offset, then the codes padded to a
//! multiple of 16), `quantized.offsets.data` for multivectors (per point `{start: u32, count:
//! u32}`), `quantized.meta.json` (`{"actual_dim", "alpha", "offset", "multiplier",
//! "vector_parameters"}`) and `quantized.config.json` (`{"quantization_config",
//! "vector_parameters"}`; `vector_parameters` = `{"dim", "distance_type", "invert", "count"}`,
//! `count` = the number of records).
//!
//! Calibration, over the vectors of the points that have the vector (placeholders are encoded,
//! not calibrated on), in internal id order: the range `[min, max]` of all values; with a
//! `quantile` below 1 and at least 127 such vectors, Qdrant instead draws a random sample of at
//! most 5000 vectors, and with `c = max(1, min((values − 1) / 2, ⌊vectors · (1 − quantile) /
//! 2⌋))` (values and vectors of the sample) takes the values of sorted positions `c + 1` and
//! `values − c − 1` as the range. Up to 5000 vectors the sample is every vector, so the range
//! is deterministic; above, Qdrant's sample is random (`rand::rng()`), and this writer takes
//! 5000 vectors evenly spaced instead (so files of bigger segments cannot match Qdrant's bit
//! for bit, only in kind). Then `alpha = (max − min) / 127`, `offset = min`, code =
//! `round(clamp((v − offset) / alpha, 0, 127))`. Input values: the stored ones (f16 widened;
//! `uint8` widened and, for Cosine, normalised).

use crate::error::{Error, Result};
use crate::format::binary_quantized_write::{write_immutable_files, QuantInput};
use crate::format::names;
use crate::format::segment_meta::{QuantizationConfig, VectorDataConfig};
use crate::storage::{join, Storage};
use crate::types::{Datatype, Distance};

/// Codes are padded to a multiple of this.
const ALIGNMENT: usize = 16;
/// Qdrant's calibration sample size (vectors).
const SAMPLE_SIZE: usize = 5000;

/// The calibrated range `(min, max)` of `vectors` (module docs).
fn calibration_range(vectors: &[&[f32]], quantile: Option<f32>) -> (f32, f32) {
    let min_max = |vs: &mut dyn Iterator<Item = f32>| {
        vs.fold((f32::MAX, f32::MIN), |(lo, hi), x| (if x < lo { x } else { lo }, if x > hi { x } else { hi }))
    };
    let full = min_max(&mut vectors.iter().flat_map(|v| v.iter().copied()));
    let Some(q) = quantile else { return full };
    let count = vectors.len();
    if count < 127 || q >= 1.0 {
        return full;
    }
    let sample: Vec<&[f32]> = if count <= SAMPLE_SIZE {
        vectors.to_vec()
    } else {
        (0..SAMPLE_SIZE).map(|k| vectors[k * count / SAMPLE_SIZE]).collect()
    };
    let mut values: Vec<f32> = sample.iter().flat_map(|v| v.iter().copied()).collect();
    let len = values.len();
    if len < 4 {
        return full;
    }
    let cut = ((len - 1) / 2).min((sample.len() as f32 * (1.0 - q) / 2.0) as usize).max(1);
    // the values strictly between sorted positions `cut` and `len - cut`
    if len < 2 * cut + 3 {
        return full;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    min_max(&mut values[cut + 1..len - cut].iter().copied())
}

/// Write the scalar int8 quantized storage of vector `name` (config `cfg`) into the new optimized
/// segment `segment_dir` when its quantization is scalar (else nothing). `points`: every point
/// of the segment in internal id order, stored values (`uint8` unshifted).
pub fn write_scalar_quantized_storage(
    storage: &dyn Storage,
    segment_dir: &str,
    name: &str,
    cfg: &VectorDataConfig,
    points: &[QuantInput],
) -> Result<()> {
    let Some(QuantizationConfig::Scalar { scalar }) = &cfg.quantization_config else { return Ok(()) };
    let dir = join(segment_dir, &names::vector_storage_dir(name));
    let dim = usize::try_from(cfg.size).map_err(|_| Error::invalid(format!("{dir}: vector size {}", cfg.size)))?;
    let multi = cfg.multivector_config.is_some();
    let normalize = cfg.datatype() == Datatype::Uint8 && cfg.distance == Distance::Cosine;
    let mut inputs: Vec<(bool, Vec<f32>)> = Vec::new();
    for p in points {
        if !multi && p.inner.len() != 1 {
            return Err(Error::Internal(format!("{dir}: {} vectors for a dense point", p.inner.len())));
        }
        for v in &p.inner {
            if v.len() != dim {
                return Err(Error::invalid(format!("{dir}: vector of {} elements, expected {dim}", v.len())));
            }
            let mut v = v.clone();
            if normalize {
                crate::spaces::normalize(&mut v);
            }
            inputs.push((p.present, v));
        }
    }
    let (distance_type, invert) = match cfg.distance {
        Distance::Cosine | Distance::Dot => ("Dot", false),
        Distance::Euclid => ("L2", true),
        Distance::Manhattan => ("L1", true),
    };
    let params =
        format!(r#"{{"dim":{dim},"distance_type":"{distance_type}","invert":{invert},"count":{}}}"#, inputs.len());
    let actual_dim = dim.div_ceil(ALIGNMENT) * ALIGNMENT;
    let kept: Vec<&[f32]> = inputs.iter().filter(|(k, _)| *k).map(|(_, v)| v.as_slice()).collect();
    let (alpha, offset) = if inputs.is_empty() || kept.is_empty() {
        (0.0f32, 0.0f32)
    } else {
        let (min, max) = calibration_range(&kept, scalar.quantile);
        ((max - min) / 127.0, min)
    };
    let multiplier = match distance_type {
        "Dot" => alpha * alpha,
        "L1" => alpha,
        _ => -2.0 * alpha * alpha,
    };
    // (no vectors at all: Qdrant writes a zero multiplier without computing it)
    let multiplier = if inputs.is_empty() {
        0.0
    } else if invert {
        -multiplier
    } else {
        multiplier
    };
    let shift = match distance_type {
        "Dot" => actual_dim as f32 * offset * offset,
        _ => 0.0,
    };
    let shift = if invert { -shift } else { shift };
    let encode = |x: f32| ((x - offset) / alpha).clamp(0.0, 127.0).round() as u8;
    let pad = encode(if distance_type == "Dot" { 0.0 } else { offset });
    let mut data = Vec::with_capacity(inputs.len() * (4 + actual_dim));
    for (_, v) in &inputs {
        let mut codes: Vec<u8> = v.iter().map(|&x| encode(x)).collect();
        codes.resize(actual_dim, pad);
        let vector_offset = match distance_type {
            "Dot" => codes.iter().map(|&c| f32::from(c)).sum::<f32>() * alpha * offset,
            "L1" => 0.0,
            _ => codes.iter().map(|&c| f32::from(c) * f32::from(c)).sum::<f32>() * alpha * alpha,
        };
        let vector_offset = if invert { -vector_offset } else { vector_offset };
        data.extend_from_slice(&(shift + vector_offset).to_le_bytes());
        data.extend_from_slice(&codes);
    }
    let f = |x: f32| serde_json::to_string(&x).map_err(|e| Error::Internal(e.to_string()));
    let meta = format!(
        r#"{{"actual_dim":{actual_dim},"alpha":{},"offset":{},"multiplier":{},"vector_parameters":{params}}}"#,
        f(alpha)?,
        f(offset)?,
        f(multiplier)?
    );
    let qcfg = serde_json::to_string(&cfg.quantization_config).map_err(|e| Error::Internal(e.to_string()))?;
    let config = format!(r#"{{"quantization_config":{qcfg},"vector_parameters":{params}}}"#);

    let inner_counts = multi.then(|| points.iter().map(|p| p.inner.len()));
    write_immutable_files(storage, &dir, &data, inner_counts, &meta, &config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    #[test]
    fn calibration_cuts_the_quantile_tails() {
        // 200 one-value vectors 0..200: c = floor(200 · 0.1 / 2) = 10 → sorted[11], sorted[189]
        let vals: Vec<[f32; 1]> = (0..200).map(|i| [i as f32]).collect();
        let vs: Vec<&[f32]> = vals.iter().map(|v| &v[..]).collect();
        assert_eq!(calibration_range(&vs, Some(0.9)), (11.0, 189.0));
        assert_eq!(calibration_range(&vs, None), (0.0, 199.0));
        assert_eq!(calibration_range(&vs, Some(1.0)), (0.0, 199.0));
        // fewer than 127 vectors: the full range
        assert_eq!(calibration_range(&vs[..100], Some(0.9)), (0.0, 99.0));
    }

    #[test]
    fn records_and_meta() {
        let st = MemoryStorage::new();
        let cfg: VectorDataConfig = serde_json::from_str(
            r#"{"size":2,"distance":"Euclid","storage_type":"InRamMmap","index":{"type":"plain","options":{}},
                "quantization_config":{"scalar":{"type":"int8"}}}"#,
        )
        .unwrap();
        let p = |present, v: Vec<f32>| QuantInput { present, inner: vec![v] };
        let points = [p(true, vec![0.0, 127.0]), p(false, vec![1.0, 1.0]), p(true, vec![127.0, 0.0])];
        write_scalar_quantized_storage(&st, "seg", "v", &cfg, &points).unwrap();
        let read = |f: &str| st.read_all(&format!("seg/vector_storage-v/{f}")).unwrap().to_vec();
        assert_eq!(
            String::from_utf8(read("quantized.meta.json")).unwrap(),
            r#"{"actual_dim":16,"alpha":1.0,"offset":0.0,"multiplier":2.0,"vector_parameters":{"dim":2,"distance_type":"L2","invert":true,"count":3}}"#
        );
        let data = read("quantized.data");
        assert_eq!(data.len(), 3 * 20);
        // record 0: offset −(127²) (invert), codes 0, 127, padding = code of `offset` (0)
        assert_eq!(f32::from_le_bytes(data[..4].try_into().unwrap()), -16129.0);
        assert_eq!(&data[4..8], &[0, 127, 0, 0]);
        // the placeholder is encoded too
        assert_eq!(&data[24..26], &[1, 1]);
        assert!(!st.exists("seg/vector_storage-v/quantized.offsets.data").unwrap());
    }
}
