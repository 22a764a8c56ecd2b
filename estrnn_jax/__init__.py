"""estrnn_jax: ESTRNN (efficient spatio-temporal RNN for video deblurring) in JAX/Flax."""
