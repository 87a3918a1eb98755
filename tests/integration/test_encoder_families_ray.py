"""Every encoder family through one LW stage: only the active groups and the heads change.

Five tiny runs cover the eleven families (three towers per avdigits run); each trains stage 2 of 2 for one
round (stage 1 gets 0 rounds, as in the paper's skewed allocation), so the embeddings and the first block
group are a frozen prefix that must come back bit-identical, while the appended groups, final norms and
heads must have moved. The three-tower run goes through a real local Ray (client actors hold image, text and
audio towers); the others run in-process, as freezing is plain torch that both backends share (Ray's runs equal
in-process ones bit for bit: test_fedavg_reference_ray.py, test_clients_per_actor_ray.py), and each Ray run
costs seconds of actor start-up.
"""

from __future__ import annotations

import pytest
import torch

from fedray.api import run_experiment
from fedray.config import load_config
from fedray.model import build_model
from fedray.plan import plan_run
from fedray.schedules import build_schedule

SMALL = "hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64"
TOWERS = {
    "vit": f"{{arch: vit, {SMALL}, patch_size: 4}}",
    "deit": f"{{arch: deit, {SMALL}, patch_size: 4}}",
    "clip_vision": f"{{arch: clip_vision, {SMALL}, patch_size: 8}}",
    "siglip_vision": f"{{arch: siglip_vision, {SMALL}, patch_size: 8}}",
    "efficientnet_lite0": "{arch: efficientnet_lite0, image_size: 32}",
    "ast": f"{{arch: ast, {SMALL}, patch_size: 4}}",
    **{t: f"{{arch: {t}, {SMALL}, max_length: 8}}" for t in ("bert", "roberta", "distilbert", "clip_text",
                                                             "siglip_text")},
}
CASES = [
    ("ray", "avdigits", {"image": "deit", "text": "roberta", "audio": "ast"}),
    ("local", "emoji", {"image": "clip_vision", "text": "clip_text"}),
    ("local", "emoji", {"image": "siglip_vision", "text": "siglip_text"}),
    ("local", "emoji", {"image": "efficientnet_lite0", "text": "distilbert"}),
    ("local", "avdigits", {"image": "vit", "text": "bert", "audio": "vit"}),
]


@pytest.mark.parametrize("backend,source,towers", CASES, ids=[f"{b}-" + "+".join(t.values()) for b, _, t in CASES])
def test_one_lw_stage_changes_only_the_active_groups_and_heads(ray_local, one_thread, tmp_path, backend, source,
                                                               towers):
    spec = ", ".join(f"{m}: {TOWERS[a]}" for m, a in towers.items())
    lr = ", ".join(f"{m}: 0.01" for m in towers)
    cfg = load_config(preset="tiny", overrides=[
        f"model.towers={{{spec}}}", f"train.lr={{{lr}, head: 0.01}}", f"data.source={source}",
        "data.num_clients=1", "data.train_limit=32", "data.eval_limit=8", "data.partition.kind=iid",
        "train.method=lw", "train.stages=2", "train.rounds=[0, 1]", "train.batch_size=16",
        "runtime.torch_threads=1", f"runtime.backend={backend}"])
    plan = plan_run(cfg)
    model = build_model(cfg.model, {m: plan.info.inputs for m in cfg.model.towers}, cfg.train.seed)
    stage = build_schedule(cfg)[1]

    result = run_experiment(cfg, str(tmp_path / "run"), progress=lambda _: None)

    assert len(result.rows) == 1
    changed: dict[str, bool] = {}
    for name, before in model.state_dict().items():
        group = model.group_of(name)
        moved = not torch.equal(before, torch.from_numpy(result.state[name].copy()))
        changed[group] = changed.get(group, False) or moved
    frozen = {g for g in changed if g not in stage.trainable}
    assert frozen >= {f"{m}.embed" for m in towers} | {f"{m}.block.0" for m in towers}
    assert not any(changed[g] for g in frozen), sorted(g for g in frozen if changed[g])
    assert all(changed[g] for g in stage.trainable), sorted(g for g in stage.trainable if not changed[g])
