//! The integration tests of radfm-model: one test binary (each extra one would
//! link the crate and its dependencies again), one module per area.

mod minilm;
mod parity;
mod peft;
mod resume;
mod zeroshot;

/// Initialisation draws from burn's generator, which is global to the device:
/// a test that builds a model (random init, or LoRA factors initialised before
/// a checkpoint replaces them) while another initialises a training run would
/// change that run's draws. Every such test holds this lock.
pub static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`DEVICE_RNG`] (a test that panicked while holding it does not poison it).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner())
}
