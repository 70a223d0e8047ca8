"""Pretrained weights by name: `hf:OWNER/NAME[@REVISION]` and `timm:MODEL.TAG`.

Both resolve to a file in huggingface_hub's cache (downloaded there with its progress bar when
missing), so its cache location (HF_HOME, HF_HUB_CACHE), offline mode (HF_HUB_OFFLINE) and tokens
(HF_TOKEN, `hf auth login`) apply as everywhere else. The file is then read by the ordinary format
detection of `backbones.checkpoints` (safetensors first; never code execution).

- `hf:OWNER/NAME[@REVISION]`: the repository's `model.safetensors`, else its `pytorch_model.bin`
  (transformers' and timm's file names), at REVISION (branch, tag or commit; default main).
- `timm:MODEL.TAG`: the weights timm's `pretrained_cfg` of that name points to (`hf_hub_id`,
  `hf_hub_filename`), as `timm.create_model(MODEL.TAG, pretrained=True)` finds them.
"""
from __future__ import annotations

import os

from .errors import UserError

HF, TIMM = "hf:", "timm:"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in order: safetensors first


def is_hub_name(source: str | os.PathLike | None) -> bool:
    """Whether `source` names weights on a hub (`hf:...` or `timm:...`) rather than a local path."""
    return isinstance(source, str) and source.startswith((HF, TIMM))


def normalise(source: str | os.PathLike) -> str:
    """How a run records its `--pretrained`: a hub name as given, a local path made absolute."""
    from pathlib import Path

    return source if is_hub_name(source) else str(Path(source).resolve())


def resolve(source: str | os.PathLike) -> str | os.PathLike:
    """The local file behind a hub name (downloading it into the cache if needed); a path unchanged."""
    if not is_hub_name(source):
        return source
    if source.startswith(TIMM):
        repo_id, revision, files = timm_weights(source)
    else:
        repo_id, revision = split_revision(source[len(HF):], source)
        files = WEIGHT_FILES
    return download(source, repo_id, revision, files)


def split_revision(spec: str, source: str) -> tuple[str, str | None]:
    repo_id, _, revision = spec.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")) or (_ and not revision):
        raise UserError(f"--pretrained {source}: expected hf:OWNER/NAME or hf:OWNER/NAME@REVISION "
                        "(e.g. hf:MCG-NJU/videomae-base)")
    return repo_id, revision or None


def timm_weights(source: str) -> tuple[str, str | None, tuple[str, ...]]:
    """Repository, revision and file of timm's pretrained weights for MODEL.TAG."""
    import timm

    name = source[len(TIMM):]
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # timm's "Invalid pretrained tag"
        cfg = None
    if cfg is None:
        tags = timm.list_pretrained(f"{name.split('.')[0]}.*")
        hint = f"its tags: {', '.join(tags[:8])}" if tags else "see timm.list_pretrained()"
        raise UserError(f"--pretrained {source}: timm has no pretrained weights of that name; {hint}")
    if not cfg.hf_hub_id:
        raise UserError(f"--pretrained {source}: timm's weights for it are not on the Hugging Face Hub "
                        f"({cfg.url or 'no download address'}); download them and pass the file")
    repo_id, revision = split_revision(cfg.hf_hub_id, source)
    return repo_id, revision, (cfg.hf_hub_filename,) if cfg.hf_hub_filename else WEIGHT_FILES


def download(source: str, repo_id: str, revision: str | None, files: tuple[str, ...]) -> str:
    """The first of `files` the repository has, from the cache or downloaded into it; one-line errors."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError, HFValidationError, LocalEntryNotFoundError, RemoteEntryNotFoundError,
        RepositoryNotFoundError, RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    not_cached = False
    for filename in files:
        try:
            return hf_hub_download(repo_id, filename, revision=revision, library_name="vidpeft")
        except RemoteEntryNotFoundError:
            continue
        except LocalEntryNotFoundError:  # offline (HF_HUB_OFFLINE or no connection) and not in the cache
            not_cached = True
        except GatedRepoError:
            raise UserError(f"--pretrained {source}: {repo_id} is gated: accept its terms at "
                            f"https://huggingface.co/{repo_id} and log in (hf auth login, or HF_TOKEN)") from None
        except RevisionNotFoundError:
            raise UserError(f"--pretrained {source}: {repo_id} has no revision {revision!r}") from None
        except RepositoryNotFoundError:
            raise UserError(f"--pretrained {source}: no repository {repo_id} on the Hugging Face Hub (or it is "
                            "private: log in with hf auth login, or set HF_TOKEN)") from None
        except HFValidationError as error:
            raise UserError(f"--pretrained {source}: {error}") from None
    if not_cached:
        from huggingface_hub import constants

        why = "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else "the Hub could not be reached"
        raise UserError(f"--pretrained {source}: {where} ({' or '.join(files)}) is not in the cache {constants.HF_HUB_CACHE} "
                        f"and {why}; download it once online, or pass a local file")
    raise UserError(f"--pretrained {source}: {where} holds no {' or '.join(files)}; pass a local checkpoint file")
