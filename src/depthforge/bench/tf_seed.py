"""The seed's own framework as the reference for the seed U-Net's training step (issue 22, item 2): the same
network in TensorFlow/Keras, the seed's loss, Adam amsgrad, one compiled ``tf.function`` step, timed as
``train.step_worker`` times PyTorch's. Runs only where ``tensorflow`` is installed (``pip install
tensorflow-cpu``: not a dependency of depthforge); ``available()`` says whether it is.

The network is ``models/seed_unet.py`` layer for layer in Keras (the seed's Keras model's trainable parameter count,
8,634,593 at width 1 and 4 levels, is its count too): two (conv3×3 → LeakyReLU 0.2 → BatchNorm) per level and
max-pooling down; a bottleneck of two (conv3×3 → LeakyReLU); bilinear ×2 up → conv3×3 → LeakyReLU, concatenated with
the skip, then two (conv3×3 → LeakyReLU → BatchNorm); a 3×3 conv and a sigmoid. The loss is the seed's notebook's
(``../shared/fixtures/README.md``, ``losses/seed.py``): clip((1 − SSIM)/2, 0, 1) + mean |∇y − ∇ŷ| + 0.1 · mean
|y − ŷ| on depth ÷ max depth, with ``tf.image.ssim`` and ``tf.image.image_gradients``. "bf16" is Keras's own
``mixed_bfloat16`` policy (TensorFlow's bf16 path; the output and the loss stay float32). This file imports neither torch nor the
rest of depthforge: ``machine.spawn(job, script=this file)`` runs its ``work`` in a process of its own.
"""
from __future__ import annotations

import importlib.util
import os
import statistics
import time


def available() -> bool:
    """Whether TensorFlow can be imported here (without importing it)."""
    return importlib.util.find_spec("tensorflow") is not None


def build(width: float = 1.0, levels: int = 4):
    """The seed's U-Net in Keras: NHWC images in [0,1] -> depth ÷ max depth in [0,1]."""
    from tensorflow import keras
    from tensorflow.keras import layers

    def conv(x, channels: int, bn: bool):
        x = layers.Conv2D(channels, 3, padding="same")(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
        return layers.BatchNormalization()(x) if bn else x

    base = max(1, round(32 * width))
    chans = [base * 2**i for i in range(levels)]
    image = keras.Input((None, None, 3))
    x, skips = image, []
    for c in chans:
        x = conv(conv(x, c, True), c, True)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    mid = base * 2**levels
    x = conv(conv(x, mid, False), mid, False)
    for c, skip in zip(reversed(chans), reversed(skips)):
        x = conv(layers.UpSampling2D(2, interpolation="bilinear")(x), c, False)
        x = layers.Concatenate()([x, skip])
        x = conv(conv(x, c, True), c, True)
    out = layers.Conv2D(1, 3, padding="same", activation="sigmoid", dtype="float32")(x)
    return keras.Model(image, out)


def seed_loss(y_true, y_pred):
    """The seed's loss on [N,H,W,1] depths ÷ max depth (see the module docstring): a scalar."""
    import tensorflow as tf

    ssim = tf.clip_by_value((1 - tf.image.ssim(y_true, y_pred, max_val=1.0)) * 0.5, 0, 1)
    dy_t, dx_t = tf.image.image_gradients(y_true)
    dy_p, dx_p = tf.image.image_gradients(y_pred)
    edges = tf.reduce_mean(tf.abs(dy_p - dy_t) + tf.abs(dx_p - dx_t))
    l1 = tf.reduce_mean(tf.abs(y_pred - y_true))
    return tf.reduce_mean(ssim + edges + 0.1 * l1)


def _rss_mb() -> float:
    """Peak resident memory, MB (VmHWM: a child's own, as ``machine.rss_mb``)."""
    for line in open("/proc/self/status").read().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def work(job: dict) -> dict:
    """Time the seed's training step in TensorFlow (job: size, batch, steps, width, precision "fp32" | "bf16");
    runs in a subprocess. Without TensorFlow: {"error": ...}."""
    if not available():
        return {"error": "tensorflow is not installed (pip install tensorflow-cpu to compare against it)"}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its start-up banner is not a result
    import tensorflow as tf

    base = _rss_mb()
    tf.random.set_seed(0)
    if job["precision"] == "bf16":
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build(job.get("width", 1.0))
    opt = tf.keras.optimizers.Adam(1e-4, amsgrad=True)
    (h, w), batch = job["size"], job["batch"]
    x = tf.random.uniform((batch, h, w, 3))
    y = tf.random.uniform((batch, h, w, 1), 0.05, 1.0)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = seed_loss(y, tf.cast(model(x, training=True), tf.float32))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    walls, cpus, loss = [], [], None
    for i in range(job["steps"] + 1):  # the first step traces and compiles the graph
        t0, c0 = time.perf_counter(), time.process_time()
        loss = float(step())
        if i:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    params = int(sum(v.shape.num_elements() for v in model.trainable_variables))
    return {"size": [h, w], "batch": batch, "parameters": params, "step_s": statistics.median(walls),
            "cpu_s": statistics.median(cpus), "peak_rss_mb": _rss_mb(), "base_rss_mb": base, "loss": loss,
            "allocator": "tensorflow's", "threads": os.cpu_count(), "framework": f"tensorflow {tf.__version__}"}
