"""Fast checks of the training stack: synthetic blur, data sampling, the trainer (tiny config, tiny crops)."""

from __future__ import annotations

from argparse import Namespace

import numpy as np
import pytest
import torch
from PIL import Image

from nafnet_litert.models.checkpoint import load_checkpoint
from nafnet_litert.errors import NafnetLitertError
from nafnet_litert.train import (
    TRAIN_CONFIGS,
    BlurSettings,
    LoadedPair,
    TrainingData,
    apply_kernel,
    blur_image,
    camera_shake_kernel,
    linear_kernel,
    load_pairs,
    random_kernel,
    train,
    train_main,
)

TINY = TRAIN_CONFIGS["tiny"]
FAST = dict(batch_size=2, crop=32, threads=1, progress=False, save_every=1)


def _sharp_images(n: int = 3, size: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour images with a few edges: something worth deblurring, made in microseconds."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = []
    for _ in range(n):
        img = np.stack([np.sin(xx * rng.uniform(2, 9) + rng.uniform(0, 6)) for _ in range(3)], 2) * 0.3 + 0.5
        img[(xx > rng.uniform(0.2, 0.8)) & (yy > rng.uniform(0.2, 0.8))] *= 0.4
        out.append(img.astype(np.float32))
    return out


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(str(path) + ".state.pt", weights_only=True)["model"]


# --------------------------------------------------------------------------------------------------- blur


def test_kernels_are_normalised_non_negative_and_centred():
    rng = np.random.default_rng(0)
    kernels = [random_kernel(rng) for _ in range(50)] + [camera_shake_kernel(rng, 15) for _ in range(10)]
    kernels += [linear_kernel(length, angle) for length in (3, 11, 25) for angle in (0.0, 0.7, 2.0)]
    for k in kernels:
        assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and k.shape[0] <= 31
        assert k.min() >= 0 and abs(float(k.sum()) - 1) < 1e-5
        ys, xs = np.mgrid[: k.shape[0], : k.shape[1]]
        c = (k.shape[0] - 1) / 2
        assert abs(float((k * xs).sum()) - c) < 1e-3 and abs(float((k * ys).sum()) - c) < 1e-3
    assert max(k.shape[0] for k in kernels) > 15  # large blurs do occur
    assert camera_shake_kernel(rng, 15).shape[0] <= 15


def test_blur_of_a_constant_image_is_that_constant():
    img = torch.full((3, 40, 40), 0.4)
    rng = np.random.default_rng(1)
    for _ in range(5):
        k = random_kernel(rng)
        assert torch.allclose(apply_kernel(img, k), img, atol=1e-6)
    settings = BlurSettings(p_gamma=1.0, p_noise=0.0, quantize=False)
    out, _ = blur_image(img, rng, settings, kernel=linear_kernel(21, 0.5))
    assert torch.allclose(out, img, atol=1e-5)


def test_blur_is_a_true_convolution_and_deterministic():
    img = torch.zeros(1, 21, 21)
    img[0, 10, 10] = 1.0
    k = camera_shake_kernel(np.random.default_rng(5), 15)
    out = apply_kernel(img, k)  # an impulse reproduces the kernel itself (not its mirror image)
    s = k.shape[0] // 2
    assert torch.allclose(out[0, 10 - s : 11 + s, 10 - s : 11 + s], torch.from_numpy(k), atol=1e-6)
    sharp = torch.from_numpy(_sharp_images(1)[0]).permute(2, 0, 1)
    a, ka = blur_image(sharp, np.random.default_rng(9))
    b, kb = blur_image(sharp, np.random.default_rng(9))
    assert torch.equal(a, b) and np.array_equal(ka, kb)


# --------------------------------------------------------------------------------------------------- data


def test_same_seed_same_batch_and_flips_apply_to_both():
    data = TrainingData(sharp=_sharp_images())
    b1, s1 = data.batch(np.random.default_rng([3, 0]), 4, 32)
    b2, s2 = data.batch(np.random.default_rng([3, 0]), 4, 32)
    assert b1.shape == s1.shape == (4, 3, 32, 32)
    assert torch.equal(b1, b2) and torch.equal(s1, s2)
    assert not torch.equal(b1, data.batch(np.random.default_rng([3, 1]), 4, 32)[0])
    # real pairs where blur == sharp stay equal under augmentation: both get the same transform
    img = (_sharp_images(1)[0] * 255).astype(np.uint8)
    paired = TrainingData(pairs=[LoadedPair("same", img, img.copy())])
    blur, sharp = paired.batch(np.random.default_rng(0), 8, 32)
    assert torch.equal(blur, sharp)


def test_paired_folders_in_gopro_layout(tmp_path):
    imgs = _sharp_images(2)
    for scene, img in zip(("GOPR0001", "GOPR0002"), imgs):
        for sub in ("blur", "sharp", "blur_gamma"):
            (tmp_path / scene / sub).mkdir(parents=True)
            Image.fromarray((img * 255).astype(np.uint8)).save(tmp_path / scene / sub / "000001.png")
    (tmp_path / "other" / "input").mkdir(parents=True)
    (tmp_path / "other" / "target").mkdir(parents=True)
    Image.fromarray((imgs[0] * 255).astype(np.uint8)).save(tmp_path / "other" / "input" / "a.png")
    Image.fromarray((imgs[0] * 255).astype(np.uint8)).save(tmp_path / "other" / "target" / "a.jpg")
    pairs = load_pairs(tmp_path)
    assert len(pairs) == 3 and all(p.blur.dtype == np.uint8 and p.blur.shape == (48, 48, 3) for p in pairs)
    Image.fromarray((imgs[0] * 255).astype(np.uint8)).save(tmp_path / "other" / "input" / "unpaired.png")
    with pytest.raises(NafnetLitertError, match="has no sharp partner"):
        load_pairs(tmp_path)
    with pytest.raises(NafnetLitertError, match="no image pairs"):
        load_pairs(tmp_path / "GOPR0001" / "blur")
    with pytest.raises(NafnetLitertError, match="not found"):
        load_pairs(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------------- train


def test_same_seed_gives_identical_weights(tmp_path):
    data = TrainingData(sharp=_sharp_images())
    r1 = train(TINY, data, 3, tmp_path / "a.safetensors", seed=7, **FAST)
    r2 = train(TINY, data, 3, tmp_path / "b.safetensors", seed=7, **FAST)
    wa, wb = _weights(tmp_path / "a.safetensors"), _weights(tmp_path / "b.safetensors")
    assert r1.losses == r2.losses
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], torch.zeros_like(wa[k])) for k in wa if k.endswith("beta"))  # they learn


def test_resume_matches_an_uninterrupted_run(tmp_path):
    data = TrainingData(sharp=_sharp_images())
    whole = train(TINY, data, 4, tmp_path / "whole.safetensors", seed=1, **FAST)
    first = train(TINY, data, 4, tmp_path / "split.safetensors", seed=1, stop_after=2, **FAST)
    assert not first.finished and first.step == 2 and not (tmp_path / "split.safetensors").exists()
    second = train(TINY, data, 4, tmp_path / "split.safetensors", seed=1, **FAST)
    assert second.finished and second.steps_run == 2 and second.losses == whole.losses
    wa, wb = _weights(tmp_path / "whole.safetensors"), _weights(tmp_path / "split.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(NafnetLitertError, match="not width 16"):  # a state of another architecture
        train(TRAIN_CONFIGS["small"], data, 4, tmp_path / "split.safetensors", **FAST)


def test_learning_rate_follows_the_cosine_from_lr_to_min_lr():
    """torch's CosineAnnealingLR (stepped by its recursive form) gives the closed-form cosine to rounding."""
    from nafnet_litert.train import TrainState

    hparams = dict(seed=0, identity_init=True, lr=1e-3, min_lr=1e-7, betas=[0.9, 0.9], weight_decay=0.0, steps=1000)
    state = TrainState.fresh(TINY, hparams)
    lrs = []
    for _ in range(1001):
        lrs.append(state.optimizer.param_groups[0]["lr"])
        state.optimizer.step()  # no gradients: nothing changes but the schedule's bookkeeping
        state.scheduler.step()
    want = 1e-7 + (1e-3 - 1e-7) * (1 + np.cos(np.pi * np.arange(1001) / 1000)) / 2
    np.testing.assert_allclose(lrs, want, rtol=1e-11, atol=0)
    assert lrs[0] == 1e-3 and abs(lrs[-1] - 1e-7) < 1e-18


@pytest.mark.slow
def test_compiled_training_follows_the_eager_run(tmp_path):
    """``compiled=True`` (torch.compile) must train the same model: same losses and weights up to fp32 rounding."""
    data = TrainingData(sharp=_sharp_images())
    eager = train(TINY, data, 3, tmp_path / "eager.safetensors", seed=3, **FAST)
    comp = train(TINY, data, 3, tmp_path / "comp.safetensors", seed=3, compiled=True, **FAST)
    np.testing.assert_allclose(comp.losses, eager.losses, atol=1e-3)
    we, wc = _weights(tmp_path / "eager.safetensors"), _weights(tmp_path / "comp.safetensors")
    assert we.keys() == wc.keys()  # the eager module's names, no "_orig_mod." prefix
    for k in we:
        torch.testing.assert_close(wc[k], we[k], atol=2e-4, rtol=1e-3)
    assert any(not torch.equal(wc[k], torch.zeros_like(wc[k])) for k in wc if k.endswith("beta"))


def test_compile_without_a_cpp_compiler_is_a_one_line_error(tmp_path, monkeypatch):
    import nafnet_litert.train.trainer as trainer

    monkeypatch.setattr(trainer.shutil, "which", lambda name: None)
    with pytest.raises(NafnetLitertError, match="needs a C\\+\\+ compiler"):
        train(TINY, TrainingData(sharp=_sharp_images()), 1, tmp_path / "m.safetensors", compiled=True, **FAST)
    assert not list(tmp_path.iterdir())  # nothing written


def test_loss_decreases_on_one_repeated_pair(tmp_path):
    sharp = _sharp_images(1, size=32)[0]
    blurred, _ = blur_image(
        torch.from_numpy(sharp).permute(2, 0, 1), np.random.default_rng(0), kernel=linear_kernel(9, 0.4)
    )
    to_u8 = lambda a: (a * 255).round().astype(np.uint8)  # noqa: E731
    pair = LoadedPair("one", to_u8(blurred.permute(1, 2, 0).numpy()), to_u8(sharp))
    data = TrainingData(pairs=[pair], augment=False)
    r = train(TINY, data, 20, tmp_path / "fit.safetensors", seed=0, val_pairs=[pair], val_every=10, **FAST)
    assert np.mean(r.losses[-3:]) < np.mean(r.losses[:3]) - 1.0  # at least 1 dB better
    assert [s for s, _ in r.val_history] == [10, 20] and r.val_history[-1][1] > r.val_history[0][1]


def test_saved_safetensors_loads_with_its_config(tmp_path):
    out = tmp_path / "model.safetensors"
    # what the CLI passes: its whole argparse namespace (extra fields ignored)
    args = Namespace(data=None, synthetic_blur=["bundled"], config="tiny", steps=1, out=str(out), seed=0,
                     batch_size=2, crop=32, lr=1e-3, threads=1, val=None, val_every=10, command="train")
    result = train_main(args, progress=False, log=lambda m: None)
    assert result.finished and result.out_path == out
    ckpt = load_checkpoint(out)
    assert ckpt.config == TINY
    assert all(v.dtype == torch.float32 for v in ckpt.state_dict.values())  # loaded as fp32 from fp16 file
    from safetensors import safe_open

    with safe_open(str(out), "pt") as f:
        assert f.get_tensor("intro.weight").dtype == torch.float16


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(config="huge"), "unknown config"),
        (dict(synthetic_blur=None), "no training data"),
        (dict(data=["/nonexistent/dir"]), "not found"),
        (dict(crop=30), "multiple of 4"),
        (dict(steps=0), "positive"),
        (dict(out="model.pt"), ".safetensors"),
        (dict(stepz=5), "unknown training option"),  # a misspelt option never passes silently
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, kwargs, message):
    opts = dict(synthetic_blur=["bundled"], config="tiny", steps=1, out=str(tmp_path / "m.safetensors"),
                crop=32, batch_size=1, progress=False, log=lambda m: None)  # fmt: skip
    opts.update(kwargs)
    if opts.get("out") == "model.pt":
        opts["out"] = str(tmp_path / "model.pt")
    with pytest.raises(NafnetLitertError, match=message) as e:
        train_main(**opts)
    assert "\n" not in str(e.value)
