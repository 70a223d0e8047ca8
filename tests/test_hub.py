"""--pretrained hf:OWNER/NAME[@REVISION] and timm:MODEL.TAG, resolved offline from a huggingface_hub
cache built here in its real layout (models--OWNER--NAME/{blobs,snapshots/<commit>,refs/<ref>}, checked
by huggingface_hub's own scan_cache_dir) holding small generated checkpoints. Nothing reaches the network."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import timm
import torch
from huggingface_hub import constants, scan_cache_dir
from huggingface_hub.errors import GatedRepoError
from huggingface_hub.file_download import repo_folder_name
from safetensors.torch import save_file

from test_checkpoints import MICRO_VIT, NUM_CLASSES, assert_same_logits, clip, hf_videomae
from test_engine import SMALL, data  # noqa: F401  (the prepared-videos fixture)

import vidpeft
from fixtures.checkpoint_formats import save_hf_directory
from vidpeft.errors import UserError

REPO = "vidpeft-test/videomae-micro"
MAIN, V1 = "1" * 40, "2" * 40  # commit hashes of the two revisions


def cache_file(cache: Path, repo_id: str, commit: str, name: str, content: bytes, refs: tuple[str, ...] = ()) -> None:
    """One file of one revision in huggingface_hub's cache layout: the blob named by its sha256, the
    snapshot entry a relative symlink to it, refs/<ref> holding the commit hash."""
    repo = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(content)
    entry = repo / "snapshots" / commit / name
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.symlink_to(os.path.relpath(blob, entry.parent))
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A cache holding REPO at main (model.safetensors) and at tag v1 (other weights, pytorch_model.bin
    only), and timm's vit_tiny_patch16_224.augreg_in21k; the references to compare with."""
    root = tmp_path_factory.mktemp("hf_home")
    cache = root / "hub"
    x = clip((2, 3, 4, 32, 32))
    references = {}
    for commit, init, safetensors in ((MAIN, 0.02, True), (V1, 0.05, False)):  # other weights at v1
        model = hf_videomae(32, 4, **MICRO_VIT, initializer_range=init)
        directory = save_hf_directory(model, root / commit[:4], safetensors=safetensors)
        name = "model.safetensors" if safetensors else "pytorch_model.bin"
        cache_file(cache, REPO, commit, name, (directory / name).read_bytes(),
                   refs=("main",) if commit == MAIN else ("v1",))
        with torch.no_grad():
            references[commit] = model(pixel_values=x.transpose(1, 2)).logits
    image = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    save_file(image.state_dict(), root / "timm.safetensors")
    cache_file(cache, "timm/vit_tiny_patch16_224.augreg_in21k", MAIN, "model.safetensors",
               (root / "timm.safetensors").read_bytes(), refs=("main",))
    return SimpleNamespace(home=root, cache=cache, x=x, references=references, image=image)


@pytest.fixture
def offline(hub, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub.cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub


def test_the_cache_is_a_real_huggingface_hub_cache(hub):
    info = {repo.repo_id: repo for repo in scan_cache_dir(hub.cache).repos}
    assert set(info) == {REPO, "timm/vit_tiny_patch16_224.augreg_in21k"}
    revisions = {r.commit_hash: (sorted(r.refs), sorted(f.file_name for f in r.files)) for r in info[REPO].revisions}
    assert revisions == {MAIN: (["main"], ["model.safetensors"]), V1: (["v1"], ["pytorch_model.bin"])}


@pytest.mark.parametrize("revision", ["", "@main", f"@{MAIN}", "@v1", f"@{V1}"])
def test_hf_name_loads_that_revision(offline, revision):
    model = vidpeft.build_model("videomae-micro", "lora", NUM_CLASSES).eval()
    report = vidpeft.load_pretrained(model, f"hf:{REPO}{revision}")
    assert report.format == "Hugging Face transformers VideoMAE" and not report.missing
    assert report.path.startswith(f"hf:{REPO}{revision} ({offline.cache}")
    with torch.no_grad():
        assert_same_logits(model(offline.x), offline.references[V1 if "v1" in revision or V1 in revision else MAIN])


def test_timm_name_loads_timms_hub_weights(offline):
    model = vidpeft.build_model("timm/vit_tiny_patch16_224", "linear", NUM_CLASSES)
    report = vidpeft.load_pretrained(model, "timm:vit_tiny_patch16_224.augreg_in21k")
    assert report.format == "timm ViT"
    for name, value in offline.image.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(model.state_dict()[f"image.{name}"], value), name


@pytest.mark.parametrize("name, message", [
    ("hf:nobody/nothing", r"nobody/nothing \(model.safetensors or pytorch_model.bin\) is not in the cache "
                          ".* and HF_HUB_OFFLINE is set; download it once online, or pass a local file"),
    (f"hf:{REPO}@v2", rf"{REPO}@v2 \(model.safetensors or pytorch_model.bin\) is not in the cache"),
    ("hf:no-owner", "expected hf:OWNER/NAME or hf:OWNER/NAME@REVISION"),
    ("timm:vit_tiny_patch16_224.nope", "timm has no pretrained weights of that name; its tags: "),
    ("timm:vit_small_patch16_224.augreg_in21k", "timm/vit_small_patch16_224.augreg_in21k .* is not in the cache"),
])
def test_missing_or_malformed_names_are_one_line_errors(offline, name, message):
    model = vidpeft.build_model("videomae-micro", "linear", NUM_CLASSES)
    with pytest.raises(UserError, match=message) as error:
        vidpeft.load_pretrained(model, name)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"--pretrained {name}: ")


def test_gated_and_unknown_repositories_name_the_repo(offline, monkeypatch):
    """What the Hub answers online (gated: 403, unknown or private: 404), raised as huggingface_hub raises it."""
    response = SimpleNamespace(headers={}, request=None)
    for error, message in ((GatedRepoError("403 gated", response=response),
                            f"{REPO} is gated: accept its terms at https://huggingface.co/{REPO} and log in"),
                           (huggingface_hub.errors.RepositoryNotFoundError("404", response=response),
                            f"no repository {REPO} on the Hugging Face Hub")):
        def refuse(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
        with pytest.raises(UserError, match=message):
            vidpeft.load_pretrained(vidpeft.build_model("videomae-micro", "linear", NUM_CLASSES), f"hf:{REPO}")


def test_vidpeft_train_takes_an_hf_name_from_the_offline_cache(hub, data, tmp_path):  # noqa: F811
    env = {**os.environ, "HF_HOME": str(hub.home), "HF_HUB_CACHE": str(hub.cache), "HF_HUB_OFFLINE": "1"}
    work = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "vidpeft.cli.train", "--backbone", "videomae-micro", "--method",
                           "dora", "--data", str(data), "--work-dir", str(work), "--epochs", "1", *SMALL,
                           "--pretrained", f"hf:{REPO}@v1"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"hf:{REPO}@v1 ({hub.cache}" in proc.stdout and "Hugging Face transformers VideoMAE" in proc.stdout
    assert (work / "eval.json").is_file()
    # the run records the name, so vidpeft-test and load_adapter resolve it again from the cache
    check = subprocess.run([sys.executable, "-c", "import sys, vidpeft; m = vidpeft.load_adapter(sys.argv[1]); "
                            "print(m.vidpeft_spec.pretrained)", str(work / "best")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert check.returncode == 0 and check.stdout.strip() == f"hf:{REPO}@v1", check.stderr[-2000:]


def test_vidpeft_params_loads_an_hf_name(offline, capsys):
    from vidpeft.cli import params as params_cli

    assert params_cli.main(["--backbone", "videomae-micro", "--method", "probe", "--pretrained", f"hf:{REPO}"]) == 0
    out = capsys.readouterr().out
    assert f"hf:{REPO} ({offline.cache}" in out and "Hugging Face transformers VideoMAE checkpoint" in out
    assert "videomae-micro + probe: trainable" in out
    assert params_cli.main(["--backbone", "videomae-micro", "--pretrained", "hf:nobody/nothing"]) == 2
    assert "is not in the cache" in capsys.readouterr().err
