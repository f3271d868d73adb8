//! Tone generation, Goertzel detection, WAV read/write and conversion.

use std::io::Cursor;

use habla_media::g711::G711;
use habla_media::tone::{
    dominant_frequency, dual_tone, goertzel_power, tone_fraction, ToneGenerator,
};
use habla_media::wav::{read_wav, resample_linear, write_wav};
use habla_media::WavError;

#[test]
fn goertzel_finds_a_1khz_tone_and_rejects_others() {
    let samples = ToneGenerator::new(1000.0, 8000, 8000).take(1600);
    assert!(tone_fraction(&samples, 1000.0, 8000) > 0.95);
    assert!(tone_fraction(&samples, 1200.0, 8000) < 0.01);
    assert!(tone_fraction(&samples, 500.0, 8000) < 0.01);
    assert_eq!(
        dominant_frequency(&samples, &[400.0, 800.0, 1000.0, 1400.0, 2000.0], 8000),
        Some(1000.0)
    );
    // Power ≈ A²/4 for peak amplitude A.
    let p = goertzel_power(&samples, 1000.0, 8000);
    assert!((p / (8000.0f64 * 8000.0 / 4.0) - 1.0).abs() < 0.01, "{p}");
    // Silence has no tone.
    assert_eq!(tone_fraction(&[0; 160], 1000.0, 8000), 0.0);
    assert_eq!(goertzel_power(&[], 1000.0, 8000), 0.0);
}

#[test]
fn tone_survives_g711_and_dtmf_pairs_are_distinguished() {
    let samples = ToneGenerator::new(1000.0, 8000, 12000).take(800);
    for law in [G711::Pcmu, G711::Pcma] {
        let mut enc = Vec::new();
        law.encode(&samples, &mut enc);
        let mut dec = Vec::new();
        law.decode(&enc, &mut dec);
        assert!(tone_fraction(&dec, 1000.0, 8000) > 0.95, "{law:?}");
    }
    // Digit 5: 770 Hz + 1336 Hz (ITU-T Q.23).
    let five = dual_tone(770.0, 1336.0, 8000, 16000, 800);
    assert!(tone_fraction(&five, 770.0, 8000) > 0.4);
    assert!(tone_fraction(&five, 1336.0, 8000) > 0.4);
    assert!(tone_fraction(&five, 697.0, 8000) < 0.05);
    // Phase continues across calls: two halves equal one whole.
    let mut a = ToneGenerator::new(440.0, 8000, 1000);
    let mut halves = a.take(80);
    halves.extend(a.take(80));
    assert_eq!(halves, ToneGenerator::new(440.0, 8000, 1000).take(160));
}

#[test]
fn wav_8khz_mono_round_trip() {
    let samples = ToneGenerator::new(1000.0, 8000, 10000).take(8000);
    let mut file = Cursor::new(Vec::new());
    write_wav(&mut file, &samples).unwrap();
    let bytes = file.into_inner();
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(read_wav(Cursor::new(&bytes), 60).unwrap(), samples);
    assert!(matches!(
        read_wav(Cursor::new(&bytes), 0),
        Err(WavError::TooLong(0))
    ));
}

fn wav_bytes(
    spec: hound::WavSpec,
    write: impl FnOnce(&mut hound::WavWriter<&mut Cursor<Vec<u8>>>),
) -> Vec<u8> {
    let mut c = Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut c, spec).unwrap();
        write(&mut w);
        w.finalize().unwrap();
    }
    c.into_inner()
}

#[test]
fn wav_stereo_44k1_is_downmixed_and_resampled() {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let left = ToneGenerator::new(1000.0, 44100, 8000).take(44100);
    let bytes = wav_bytes(spec, |w| {
        for &s in &left {
            w.write_sample(s).unwrap();
            w.write_sample(s).unwrap();
        }
    });
    let out = read_wav(Cursor::new(bytes), 60).unwrap();
    assert_eq!(out.len(), 8000, "one second at 8 kHz");
    assert!(tone_fraction(&out, 1000.0, 8000) > 0.95);
}

#[test]
fn wav_24bit_and_float_and_8bit_are_scaled_to_16_bits() {
    let spec24 = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let bytes = wav_bytes(spec24, |w| {
        w.write_sample(0x40_0000i32).unwrap();
        w.write_sample(-0x80_0000i32).unwrap();
    });
    assert_eq!(
        read_wav(Cursor::new(bytes), 1).unwrap(),
        vec![0x4000, -0x8000]
    );
    let specf = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let bytes = wav_bytes(specf, |w| {
        w.write_sample(0.5f32).unwrap();
        w.write_sample(-1.0f32).unwrap();
        w.write_sample(2.0f32).unwrap();
    });
    assert_eq!(
        read_wav(Cursor::new(bytes), 1).unwrap(),
        vec![16384, -32768, 32767]
    );
    let spec8 = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 8,
        sample_format: hound::SampleFormat::Int,
    };
    let bytes = wav_bytes(spec8, |w| {
        w.write_sample(64i8).unwrap();
        w.write_sample(-128i8).unwrap();
    });
    assert_eq!(
        read_wav(Cursor::new(bytes), 1).unwrap(),
        vec![16384, -32768]
    );
}

#[test]
fn unsupported_and_malformed_wav_files_are_clear_errors() {
    // A WAVE file whose format tag is 7 (µ-law), not PCM.
    let mut ulaw = Vec::new();
    ulaw.extend(b"RIFF");
    ulaw.extend(&(4u32 + 8 + 18 + 8 + 2).to_le_bytes());
    ulaw.extend(b"WAVEfmt ");
    ulaw.extend(&18u32.to_le_bytes());
    ulaw.extend(&7u16.to_le_bytes()); // WAVE_FORMAT_MULAW
    ulaw.extend(&1u16.to_le_bytes());
    ulaw.extend(&8000u32.to_le_bytes());
    ulaw.extend(&8000u32.to_le_bytes());
    ulaw.extend(&1u16.to_le_bytes());
    ulaw.extend(&8u16.to_le_bytes());
    ulaw.extend(&0u16.to_le_bytes());
    ulaw.extend(b"data");
    ulaw.extend(&2u32.to_le_bytes());
    ulaw.extend([0xFF, 0xFF]);
    let err = read_wav(Cursor::new(ulaw), 10).unwrap_err();
    assert!(matches!(err, WavError::Unsupported(_)), "{err:?}");
    assert!(err.to_string().starts_with("unsupported WAV format"));

    assert!(matches!(
        read_wav(Cursor::new(b"not a wav file at all".to_vec()), 10),
        Err(WavError::Malformed(_))
    ));
    assert!(read_wav(Cursor::new(Vec::new()), 10).is_err());
}

#[test]
fn linear_resampling() {
    assert_eq!(
        resample_linear(&[0, 100, 200, 300], 8000, 8000),
        vec![0, 100, 200, 300]
    );
    assert_eq!(
        resample_linear(&[0, 100, 200, 300], 16000, 8000),
        vec![0, 200]
    );
    assert_eq!(
        resample_linear(&[0, 100], 4000, 8000),
        vec![0, 50, 100, 100]
    );
    assert!(resample_linear(&[], 16000, 8000).is_empty());
}
