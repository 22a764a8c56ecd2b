"""What accelerators consume: data-sheet peak FLOP/s per device and the FLOPs of a training window.

Shared by `model_benchmark` (utilisation of a measured run) and `input_pipeline_benchmark` (how many windows
per second a device would consume, to compare with what the host's input pipeline delivers).
"""

from estrnn_jax import profile

# Dense peak FLOP/s per device: (name as in `device.device_kind`, matched by substring; bf16; float32 as XLA
# executes it by default: TF32 on NVIDIA Ampere+, bf16 passes on TPU), from the vendors' data sheets.
# The more specific names come first ('TPU v5 lite' before 'TPU v5').
PEAK_FLOPS = (
    ('H200', 989e12, 494e12),
    ('H100', 989e12, 494e12),
    ('A100', 312e12, 156e12),
    ('L4', 121e12, 60e12),
    ('TPU v6', 918e12, 918e12),
    ('TPU v5 lite', 197e12, 197e12),
    ('TPU v5e', 197e12, 197e12),
    ('TPU v5p', 459e12, 459e12),
    ('TPU v5', 459e12, 459e12),
    ('TPU v4', 275e12, 275e12),
)


def peak_flops(device_kind: str, dtype: str = 'bfloat16') -> float | None:
  """The data-sheet peak of a device (by `device_kind` substring) for `dtype`; None if unknown (CPUs)."""
  for name, bf16, f32 in PEAK_FLOPS:
    if name.lower() in device_kind.lower():
      return bf16 if dtype == 'bfloat16' else f32
  return None


def training_window_flops(n_features: int, n_blocks: int, frames: int, outputs: int, height: int,
                          width: int) -> float:
  """FLOPs of one training window (forward + backward, by true MACs) of `frames` height x width frames with
  `outputs` output frames: the RDB cell runs on every frame, GSA and the reconstructor on each output
  (paper Secs. 3.1-3.3); 2 FLOPs per MAC, the backward pass counted as twice the forward."""
  counts = profile.profile(n_features, n_blocks, height, width)
  cell = counts.true_macs_by_module['cell']
  per_output = counts.true_macs - cell  # GSA (fusion) + reconstructor
  return 3 * 2 * (frames * cell + outputs * per_output)
