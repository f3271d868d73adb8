//! Test signals and their detection: sine tone generation and the Goertzel
//! algorithm (a single-bin DFT) to measure the power at one frequency.

/// Generates a sine tone sample by sample, keeping phase across calls.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    /// Phase increment per sample, in radians.
    step: f64,
    phase: f64,
    amplitude: f64,
}

impl ToneGenerator {
    /// A tone of `frequency` Hz at `sample_rate` Hz with peak `amplitude`
    /// (linear 16-bit units; 8000 ≈ -12 dBFS).
    pub fn new(frequency: f64, sample_rate: u32, amplitude: i16) -> Self {
        ToneGenerator {
            step: 2.0 * std::f64::consts::PI * frequency / f64::from(sample_rate.max(1)),
            phase: 0.0,
            amplitude: f64::from(amplitude),
        }
    }

    /// The next sample.
    pub fn next_sample(&mut self) -> i16 {
        let v = self.amplitude * self.phase.sin();
        self.phase = (self.phase + self.step) % (2.0 * std::f64::consts::PI);
        v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    }

    /// Fills `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for s in out {
            *s = self.next_sample();
        }
    }

    /// The next `n` samples.
    pub fn take(&mut self, n: usize) -> Vec<i16> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// The sum of two tones, e.g. a DTMF digit (ITU-T Q.23 frequencies).
pub fn dual_tone(low: f64, high: f64, sample_rate: u32, amplitude: i16, n: usize) -> Vec<i16> {
    let mut a = ToneGenerator::new(low, sample_rate, amplitude / 2);
    let mut b = ToneGenerator::new(high, sample_rate, amplitude / 2);
    (0..n)
        .map(|_| a.next_sample().saturating_add(b.next_sample()))
        .collect()
}

/// Power of `samples` at `frequency` Hz by the Goertzel algorithm (a
/// single DFT bin), divided by N² so it does not grow with the block length:
/// a sine of peak amplitude A at `frequency` gives about A²/4.
pub fn goertzel_power(samples: &[i16], frequency: f64, sample_rate: u32) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let omega = 2.0 * std::f64::consts::PI * frequency / f64::from(sample_rate.max(1));
    let coeff = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    power / (n * n)
}

/// Mean power of `samples` (A²/2 for a sine of peak A).
pub fn mean_power(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        / samples.len() as f64
}

/// The fraction (0..=1, approximately) of the signal's power that lies at
/// `frequency`: about 1 for a pure tone at that frequency, near 0 for
/// silence or other frequencies more than a bin (`sample_rate / N`) away.
pub fn tone_fraction(samples: &[i16], frequency: f64, sample_rate: u32) -> f64 {
    let total = mean_power(samples);
    if total <= f64::EPSILON {
        return 0.0;
    }
    // Goertzel gives A²/4 for a sine of power A²/2: scale by 2.
    2.0 * goertzel_power(samples, frequency, sample_rate) / total
}

/// The candidate frequency with the most power in `samples`.
pub fn dominant_frequency(samples: &[i16], candidates: &[f64], sample_rate: u32) -> Option<f64> {
    candidates
        .iter()
        .copied()
        .map(|f| (f, goertzel_power(samples, f, sample_rate)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(f, _)| f)
}
