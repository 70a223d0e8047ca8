"""Recipes in configs/ load into DataConfig; SSv2 is never flipped."""
import pytest

from vidpeft.config.recipes import load_recipe, recipe_path
from vidpeft.data import DataConfig

TRAIN_KEYS = {
    "epochs", "warmup_epochs", "batch_size", "optimizer", "base_lr", "momentum", "weight_decay",
    "layer_decay", "label_smoothing", "mixup", "cutmix", "drop_path", "amp", "accumulation",
    "eval_every", "seed",
}
VIDEOMAE_TRAIN_KEYS = TRAIN_KEYS | {"min_lr_ratio"}


def test_vpetl_recipe():
    recipe = load_recipe("vpetl", dataset="ssv2", backbone="videoswin-b")
    cfg = DataConfig.from_recipe(recipe)
    assert (cfg.frames, cfg.sampling, cfg.stride, cfg.train_crop, cfg.flip) == (8, "dense", 4, "multiscale", False)
    assert cfg.scales == (1.0, 0.875, 0.75, 0.66) and cfg.randaugment is None and cfg.random_erasing == 0
    assert cfg.views() == {"frames": 8, "stride": 4, "clips": 4, "crops": 3, "temporal": "videomae"}
    assert cfg.train_temporal == "videomae"
    assert cfg.dataset == "ssv2" and cfg.short_side_resize == 224
    assert set(recipe["train"]) == TRAIN_KEYS
    assert (recipe["train"]["optimizer"], recipe["train"]["base_lr"], recipe["train"]["drop_path"]) == ("sgd", 0.1, 0.4)
    assert load_recipe("vpetl", backbone="videomae-b")["train"]["drop_path"] == 0.0


def test_videomae_recipe_per_dataset():
    k400 = load_recipe("videomae", dataset="k400")
    ssv2 = load_recipe("videomae", dataset="ssv2")
    assert DataConfig.from_recipe(k400).views() == {"frames": 16, "stride": 4, "clips": 5, "crops": 3,
                                                       "temporal": "videomae"}
    assert DataConfig.from_recipe(ssv2).views() == {"frames": 16, "segments": 16, "clips": 2, "crops": 3,
                                                       "temporal": "videomae"}
    cfg = DataConfig.from_recipe(ssv2)
    assert (cfg.train_crop, cfg.randaugment, cfg.random_erasing) == ("random_resized", "rand-m7-n4-mstd0.5-inc1", 0.25)
    assert (k400["train"]["epochs"], ssv2["train"]["epochs"]) == (75, 30)
    assert set(k400["train"]) == VIDEOMAE_TRAIN_KEYS
    assert (cfg.repeated_aug, cfg.flip, DataConfig.from_recipe(k400).flip) == (2, False, True)
    assert load_recipe("videomae", backbone="videomae-b")["backbone"] == {"head_init_scale": 0.001}
    assert (k400["train"]["optimizer"], k400["train"]["layer_decay"], k400["train"]["mixup"]) == ("adamw", 0.75, 0.8)


@pytest.mark.parametrize("dataset", ["ssv2", "SSv2", "sthv2", "something-something-v2"])
def test_ssv2_refuses_flip(dataset):
    with pytest.raises(ValueError, match="flip is refused .*left/right"):
        DataConfig(flip=True, dataset=dataset)
    with pytest.raises(ValueError, match="flip is refused"):
        DataConfig.from_recipe(load_recipe("videomae", dataset="ssv2"), flip=True)
    assert DataConfig(flip=True, dataset="k400").flip


def test_overrides_and_bad_options(tmp_path):
    cfg = DataConfig.from_recipe(load_recipe("vpetl"), frames=16, stride=None, decoder="pyav")
    assert (cfg.frames, cfg.stride, cfg.decoder) == (16, 4, "pyav")
    with pytest.raises(ValueError, match="unknown key data.frame; did you mean data.frames\\? known data keys: frames, "):
        DataConfig.from_recipe({"data": {"frame": 8}})
    with pytest.raises(ValueError, match="unknown key test.views; known test keys: clips, crops, temporal"):
        DataConfig.from_recipe({"test": {"views": 8}})
    with pytest.raises(ValueError, match="data.sampling: 'uniform'; must be one of dense, segment"):
        DataConfig(sampling="uniform")
    with pytest.raises(FileNotFoundError, match="videomae, vpetl"):
        recipe_path("nope")
    own = tmp_path / "mine.yaml"
    own.write_text("data:\n  frames: 4\ntest:\n  clips: 1\n  crops: 1\n")
    assert DataConfig.from_recipe(load_recipe(own)).views() == {"frames": 4, "stride": 4, "clips": 1, "crops": 1,
                                                                  "temporal": "centred"}
