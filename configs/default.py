r"""Default config: a small ESTRNN on the built-in synthetic blur dataset, sized for a laptop CPU.

Command (from the repository root):

  python -m estrnn_jax.main --config=configs/default.py --workdir=/tmp/estrnn_default

The first run builds `synthetic_blur/small_3ms24ms` (128x128 frames with the strongest of the three synthetic
blur settings, 40/8/8 train/validation/test sequences of 24 frames; about a minute on 2 cores) into
`~/tensorflow_datasets` (or `--config.dataset.data_dir`). Every other config in this folder starts from this one
and overrides what differs; every field is commented here.

Hardware it was sized for: 2 CPU cores (about ten minutes there; README "Quick start" gives the measured time
and PSNR, with the command that measured them).

The model differs from the paper's in one respect: `model.residual = True` adds each centre input frame to its
output, so the network learns the correction (the paper's ESTRNN, every paper config and the official weights
predict the sharp frame itself; README says what that costs on this budget).
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  """The default (synthetic, laptop-sized) training config."""
  config = ml_collections.ConfigDict()

  # Seed for parameter initialisation and the data pipeline's sampling/crops/flips.
  config.seed = 0
  # Global batch size (windows per step, summed over all devices and hosts). Must be divisible by the number of
  # devices (each device gets an equal slice) and of processes.
  config.batch_size = 8
  # Number of optimiser steps; training stops (and writes a final checkpoint) when it is reached. 0 only writes
  # a step-0 checkpoint of the initial parameters (with `init_from`: a workdir made from those weights).
  config.num_train_steps = 1200
  # Split each step's batch into this many micro-batches run one after another, gradients averaged: the same
  # update as the whole batch with the activation memory of a micro-batch (e.g. the paper's batch of 8 on one
  # small GPU). Each device's share of batch_size must be a multiple of it.
  config.grad_accum_steps = 1
  # Fine-tuning: start from these weights instead of a random initialisation (step 0, fresh optimiser): an
  # official `.pth.tar`, a converted model directory, a checkpoint step directory or a training workdir (its
  # latest step). The stored model must be `config.model` (a mismatch names the differing fields). Ignored
  # when the workdir already has checkpoints (a resumed run continues from its own). None: random init.
  config.init_from = config_dict.placeholder(str)

  config.model = ml_collections.ConfigDict()
  # C: base channel count; the paper's channel count is 5C (B15C80 = 16 features, 15 blocks). The paper's C
  # matters more than B for learning fast: the cell squeezes every 4x4 patch into 5C channels.
  config.model.n_features = 16
  # B: number of residual dense blocks in the cell's F_R.
  config.model.n_blocks = 2
  # Frames before / after each output frame fused by GSA (the paper uses 2 and 2).
  config.model.past_frames = 2
  config.model.future_frames = 2
  # Compute dtype: 'float32' or 'bfloat16' (parameters, optimiser state and the loss stay float32).
  config.model.dtype = 'float32'
  # Rematerialise each cell step in the backward pass (saves activation memory for long windows).
  config.model.remat = False
  # Run the recurrent cell unrolled over the window's frames instead of a scan loop (same result; XLA's CPU
  # backend computes conv gradients inside loops 10-15x slower; costs compile time). The paper configs, sized for
  # accelerators, keep the scan.
  config.model.unroll = True
  # Add each centre input frame to its output (the network learns the correction). Not in the paper: the paper
  # configs set False (as the official weights); here it makes the small model beat the blurry input in minutes.
  config.model.residual = True
  # Table 4's ablation switches (paper Sec. 4.4): the cell, 'rdb' (the paper's) or 'resblock' ("w/o RDB cell"),
  # and the fusion, 'gsa' (the paper's), 'concat' ("w/o GSA") or 'none' ("w/o fusion"; needs past_frames =
  # future_frames = 0). Presets for the table's rows: configs/ablation.py.
  config.model.cell = 'rdb'
  config.model.fusion = 'gsa'
  # The frames: 'rgb' (8-bit RGB, the paper's model) or 'raw' (the official ESTRNN-RAW on 16-bit single-channel
  # Bayer frames, e.g. `bsd/2ms16ms_raw`; configs/bsd.py:2ms16ms_raw).
  config.model.input = 'rgb'

  config.dataset = ml_collections.ConfigDict()
  # TFDS name '<builder>/<config>'. A 'synthetic_blur/...' dataset missing from `data_dir` is built on first use.
  config.dataset.name = 'synthetic_blur/small_3ms24ms'
  # TFDS data directory (None: TFDS's default, ~/tensorflow_datasets or $TFDS_DATA_DIR). May be gs://.
  config.dataset.data_dir = config_dict.placeholder(str)
  # Split sampled for training.
  config.dataset.train_split = 'train'
  # Train on the split's first N sequences in the dataset's order (0: all). The paper's REDS models saw the
  # first 120 of its 240 training sequences.
  config.dataset.train_sequences = 0
  # Consecutive frames per training window; the loss covers the `frames - past - future` centre frames.
  config.dataset.window_frames = 6
  # Side of the square random crop (same crop and flips for every frame of a window). Multiple of 4.
  config.dataset.crop_size = 48
  # grain worker processes per host for training data (0: read in the training process; -1: sized for the host,
  # none on <= 4 cores, where workers would compete with XLA's threads; see input_pipeline.resolve_num_workers).
  config.dataset.num_workers = -1
  # Gaussian noise added to the blurry training frames only (never to the targets), standard deviation in 8-bit
  # levels (16-bit RAW frames: 257x that), drawn afresh for every window from the pipeline's seed (so a resumed run
  # sees the same noise), rounded and clipped to the frames' range. 0: none. The paper's Fig. 15 study (DVD with
  # noise): configs/dvd.py:noise<sigma>.
  config.dataset.noise_std = 0.0

  # Loss: 'charbonnier_color' (the reference's default, and BSD's), 'charbonnier' or 'mse' (GOPRO's and REDS's;
  # it optimises PSNR directly and learned faster here).
  config.loss = 'mse'

  config.optimizer = ml_collections.ConfigDict()
  # Adam, as the reference: beta1, beta2, eps.
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-8
  # Peak learning rate.
  config.optimizer.learning_rate = 1e-3
  # 'cosine' (anneal to `end_learning_rate` over `num_train_steps`), 'step' (multiply by `decay_factor` at each
  # step in `milestones`) or 'constant'.
  config.optimizer.schedule = 'cosine'
  # Floor of the cosine schedule (the reference's eta_min).
  config.optimizer.end_learning_rate = 1e-8
  # Cosine only: 0 anneals smoothly every step; N > 0 holds the rate constant over each block of N steps (one
  # "epoch"), exactly as the reference's per-epoch CosineAnnealingLR.
  config.optimizer.steps_per_epoch = 0
  # Linear warm-up from 0 over this many steps before the schedule starts (the reference uses none).
  config.optimizer.warmup_steps = 20
  # Step schedule only: step numbers where the rate is multiplied by `decay_factor`.
  config.optimizer.milestones = ()
  config.optimizer.decay_factor = 0.5
  # Clip gradients to this global L2 norm (the reference: 20). 0 disables clipping.
  config.optimizer.grad_clip_norm = 20.0

  config.eval = ml_collections.ConfigDict()
  # Split evaluated during training (validation PSNR/SSIM, best-checkpoint selection).
  config.eval.split = 'validation'
  # Split `python -m estrnn_jax.evaluate` scores by default (the one the paper reports).
  config.eval.test_split = 'test'
  # 'reference' (20-frame chunks, state reset per chunk, edge frames unscored; the paper's numbers) or 'full'
  # (whole sequences, one hidden state, every frame scored).
  config.eval.protocol = 'reference'
  # Chunk length of the reference protocol; segment length of the full protocol.
  config.eval.chunk_frames = 20
  # Sequences scored per evaluation during training (0: the whole split).
  config.eval.max_sequences = 4
  # Chunks per device per forward call (reference protocol).
  config.eval.chunks_per_device = 1
  # float -> uint8 before PSNR/SSIM: 'round' (images.to_uint8) or 'truncate' (the reference's test script).
  config.eval.rounding = 'round'
  # Frames shown as blurry | ours | sharp strips in TensorBoard at each evaluation.
  config.eval.num_image_strips = 3
  # RAW datasets only: the RGB dataset of the same release whose frames `evaluate --protocol raw_isp` scores the
  # ISP's output against (e.g. 'bsd/2ms16ms' for 'bsd/2ms16ms_raw'). None: not a RAW config.
  config.eval.isp_rgb_dataset = config_dict.placeholder(str)

  # Log training scalars (loss, learning rate, gradient/parameter norms; means over the interval) every this
  # many steps.
  config.log_every_steps = 50
  # Evaluate on `eval.split` every this many steps and at the last step (0: only at the last step; -1: never).
  config.eval_every_steps = 300
  # Save a checkpoint every this many steps (0: never periodically). One is also written after every evaluation,
  # at the last step and on SIGTERM / preemption.
  config.checkpoint_every_steps = 300
  # Most recent checkpoints kept; the best by validation PSNR is kept in addition.
  config.keep_checkpoints = 2
  # Checkpoints kept for having the best validation PSNR (0: none kept for that reason).
  config.keep_best_checkpoints = 1
  # Persistent XLA compilation cache directory (None: off). Speeds up restarts; may be gs://.
  config.compilation_cache_dir = config_dict.placeholder(str)

  return config
