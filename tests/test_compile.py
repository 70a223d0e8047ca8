"""--compile through vidpeft-train / vidpeft-test: the compiled model trains and scores like eager.

torch's default compiler (inductor) spends minutes generating C++ on a 2-core CPU, so the tests
compile with the aot_eager backend (`--set train.compile_backend=aot_eager`): the same
TorchDynamo capture and AOT autograd graphs (forward and backward), without the code
generation; benchmarks/compile_speed.py measures inductor."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from safetensors.torch import load_file
from torch._dynamo.utils import counters

import vidpeft
from test_engine import data, log_rows, train  # noqa: F401  (the prepared-data fixture)
from vidpeft.backbones import micro_backbones
from vidpeft.cli import test as test_cli
from vidpeft.config.run import RunConfig
from vidpeft.config.train import TrainConfig
from vidpeft.methods import METHODS
from vidpeft.model import compile_model

COMPILE = ["--compile", "--set", "train.compile_backend=aot_eager"]


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("compile")
    for name, extra in (("eager", []), ("compiled", COMPILE)):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert train(data, root / name, "--eval-every", "0", *extra, method="lora", epochs=1) == 0
        (root / f"{name}.out").write_text(out.getvalue())
    return root / "eager", root / "compiled"


def test_compile_is_on_by_default_on_cuda_only_and_reports_its_first_step(runs):
    assert [TrainConfig().compiles(d) for d in ("cuda", "cpu")] == [True, False]
    assert [TrainConfig(compile=c).compiles("cuda") for c in (True, False)] == [True, False]
    eager, compiled = runs
    assert RunConfig.read(eager / "config.yaml").resolved.compile is False  # the default on this CPU
    assert RunConfig.read(compiled / "config.yaml").resolved.compile is True
    assert "torch.compile: the first optimiser step took" in (compiled.parent / "compiled.out").read_text()
    assert "torch.compile" not in (eager.parent / "eager.out").read_text()


def test_compiled_training_matches_eager(runs):
    eager, compiled = runs
    [eager_row], [compiled_row] = log_rows(eager), log_rows(compiled)
    assert float(compiled_row["train_loss"]) == pytest.approx(float(eager_row["train_loss"]), rel=1e-3)
    a, b = load_file(eager / "best" / "adapter.safetensors"), load_file(compiled / "best" / "adapter.safetensors")
    assert a.keys() == b.keys()  # no _orig_mod. prefixes: the adapter loads anywhere
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-3, rtol=1e-2)
    eager_eval, compiled_eval = (json.loads((run / "eval.json").read_text()) for run in runs)
    assert compiled_eval["videos"] == eager_eval["videos"] == 8


def test_compiled_scoring_matches_eager(runs, tmp_path):
    _, compiled = runs
    scores = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        out = tmp_path / f"{name}.json"
        assert test_cli.main(["--work-dir", str(compiled), "--out", str(out), *extra]) == 0
        scores[name] = json.loads(out.read_text())
    for key in ("top1", "top5", "mean_class_accuracy", "videos"):
        assert scores["compiled"][key] == scores["eager"][key]


@pytest.mark.parametrize("backbone", micro_backbones())
def test_switching_between_training_and_evaluation_compiles_each_once(backbone):
    """A compiled model compiles one graph for training and one for evaluation (no_grad, another batch
    size), then switches between them, batch sizes varying, without compiling again: nothing the forward
    reads (caches, token grids) may change a guard."""
    torch._dynamo.reset()
    counters.clear()
    model = compile_model(vidpeft.build_model(backbone, "lora", 5, seed=0), "aot_eager")
    clip = torch.randn(6, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    graphs = []
    for batch in (2, 6, 2, 4, 2, 6):
        if batch == 2:
            model.train()
            model(clip[:batch]).sum().backward()
        else:
            model.eval()
            with torch.no_grad():
                model(clip[:batch])
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs == [1, 2, 2, 2, 2, 2]


def method_backbones() -> list[tuple[str, str]]:
    """Every registered method on the first micro backbone it attaches to (AIM refuses video backbones)."""
    pairs = []
    for method in METHODS.names():
        for backbone in ("videomae-micro", "clip-micro"):
            try:
                with torch.device("meta"):
                    vidpeft.build_model(backbone, method, 5)
            except ValueError:
                continue
            pairs.append((backbone, method))
            break
    return pairs


@pytest.mark.parametrize("backbone,method", method_backbones())
def test_every_method_compiles_into_one_graph_equal_to_eager(backbone, method):
    """vidpeft-train compiles by default on CUDA: every method's model (hand-written autograd Functions
    included) compiles without a graph break and trains as eager does, dropout's draws too."""
    torch._dynamo.reset()
    counters.clear()
    eager = vidpeft.build_model(backbone, method, 5, seed=0)
    compiled = compile_model(vidpeft.build_model(backbone, method, 5, seed=0), "aot_eager")
    clip = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    for model in (eager, compiled):
        torch.manual_seed(1)
        model.train()(clip).logsumexp(1).sum().backward()
    assert dict(counters["graph_break"]) == {}
    for (name, ours), theirs in zip(compiled.named_parameters(), eager.parameters()):
        if theirs.grad is not None:
            torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
