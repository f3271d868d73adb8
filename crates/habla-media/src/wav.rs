//! WAV files as 8 kHz mono 16-bit audio, the format G.711 carries
//! (RFC 3551 §4.5.14), read and written with `hound`.
//!
//! Reading accepts integer PCM of 8 to 32 bits and 32-bit float, any sample
//! rate and channel count: channels are averaged (downmix) and the rate is
//! converted by linear interpolation. This is enough for prompts and test
//! tones; it is not a high-quality resampler (no anti-aliasing filter).
//! Anything else is a clear [`WavError::Unsupported`].
//!
//! These functions take `Read`/`Write` values so files, sockets or memory
//! all work; the caller does the opening.

use std::io::{Read, Seek, Write};

use crate::error::WavError;

/// The rate G.711 runs at.
pub const SAMPLE_RATE: u32 = 8000;

fn map_hound(e: hound::Error) -> WavError {
    match e {
        hound::Error::IoError(e) => WavError::Io(e),
        hound::Error::FormatError(m) => WavError::Malformed(m.to_string()),
        hound::Error::TooWide => WavError::Unsupported("samples wider than 32 bits".into()),
        hound::Error::Unsupported => {
            WavError::Unsupported("not integer PCM or 32-bit float (e.g. compressed audio)".into())
        }
        hound::Error::InvalidSampleFormat => {
            WavError::Unsupported("invalid sample format for its bit depth".into())
        }
        hound::Error::UnfinishedSample => WavError::Malformed("file ends inside a sample".into()),
    }
}

/// Reads a WAV file and returns its audio as 8 kHz mono 16-bit samples.
///
/// `max_seconds` bounds the input's duration (counted at its own rate), so
/// a hostile header cannot make us allocate without limit.
pub fn read_wav<R: Read>(reader: R, max_seconds: u32) -> Result<Vec<i16>, WavError> {
    let mut wav = hound::WavReader::new(reader).map_err(map_hound)?;
    let spec = wav.spec();
    if spec.channels == 0 {
        return Err(WavError::Malformed("zero channels".into()));
    }
    if spec.sample_rate == 0 {
        return Err(WavError::Malformed("zero sample rate".into()));
    }
    let channels = usize::from(spec.channels);
    let frames = wav.duration() as usize;
    let max_frames = spec.sample_rate as usize * max_seconds as usize;
    if frames > max_frames {
        return Err(WavError::TooLong(max_frames));
    }
    let mut mono: Vec<i16> = Vec::with_capacity(frames.min(1 << 24));
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let mut acc: i64 = 0;
            let mut n = 0;
            for s in wav.samples::<i32>() {
                // Scale to 16 bits: left-justify narrow samples, drop the
                // low bits of wide ones.
                let v = i64::from(s.map_err(map_hound)?);
                let v = if bits <= 16 {
                    v << (16 - bits)
                } else {
                    v >> (bits - 16)
                };
                acc += v;
                n += 1;
                if n == channels {
                    mono.push(
                        (acc / channels as i64).clamp(i64::from(i16::MIN), i64::from(i16::MAX))
                            as i16,
                    );
                    acc = 0;
                    n = 0;
                }
            }
        }
        (hound::SampleFormat::Float, 32) => {
            let mut acc = 0.0f64;
            let mut n = 0;
            for s in wav.samples::<f32>() {
                let v = f64::from(s.map_err(map_hound)?);
                acc += if v.is_finite() { v } else { 0.0 };
                n += 1;
                if n == channels {
                    let v = (acc / channels as f64 * 32768.0).round();
                    mono.push(v.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16);
                    acc = 0.0;
                    n = 0;
                }
            }
        }
        (format, bits) => {
            return Err(WavError::Unsupported(format!(
                "{bits}-bit {format:?} samples"
            )));
        }
    }
    Ok(resample_linear(&mono, spec.sample_rate, SAMPLE_RATE))
}

/// Writes 8 kHz mono 16-bit samples as a WAV file.
pub fn write_wav<W: Write + Seek>(writer: W, samples: &[i16]) -> Result<(), WavError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(writer, spec).map_err(map_hound)?;
    {
        let mut w16 = w.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w16.write_sample(s);
        }
        w16.flush().map_err(map_hound)?;
    }
    w.finalize().map_err(map_hound)
}

/// Converts `samples` from `from_rate` to `to_rate` by linear interpolation
/// between neighbouring input samples.
pub fn resample_linear(samples: &[i16], from_rate: u32, to_rate: u32) -> Vec<i16> {
    if from_rate == to_rate || samples.is_empty() || from_rate == 0 || to_rate == 0 {
        return samples.to_vec();
    }
    let out_len = (samples.len() as u64 * u64::from(to_rate) / u64::from(from_rate)) as usize;
    let last = samples.len() - 1;
    (0..out_len)
        .map(|i| {
            // Position in the input, as an exact fraction num/to_rate.
            let num = i as u64 * u64::from(from_rate);
            let idx = (num / u64::from(to_rate)) as usize;
            let frac = (num % u64::from(to_rate)) as f64 / f64::from(to_rate);
            let a = f64::from(samples[idx.min(last)]);
            let b = f64::from(samples[(idx + 1).min(last)]);
            (a + (b - a) * frac).round() as i16
        })
        .collect()
}
