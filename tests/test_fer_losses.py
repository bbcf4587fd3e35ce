import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_backbone.models import Backbone, ExpressionAnchor
from fer_backbone.tasks import build_task
from fer_backbone.tasks.scn import SCNTask, rank_regularization, relabel_rule
from fer_backbone.tasks.slm_aea import (
    init_label_logits,
    label_logit_update,
    official_ramps,
    time_scaled_ramps,
)
from tests.fixtures_fer import TINY_BACKBONE


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_rank_regularization_margin():
    alpha = torch.tensor([0.1, 0.9, 0.2, 0.8, 0.7])
    # beta 0.6 -> top int(5*0.6)=3: {0.9, 0.8, 0.7} mean 0.8; low {0.2, 0.1} mean 0.15; gap 0.65
    loss, high, low = rank_regularization(alpha, beta=0.6, margin=0.7)
    assert loss.item() == pytest.approx(0.05, abs=1e-6)
    assert sorted(high.tolist()) == [1, 3, 4] and sorted(low.tolist()) == [0, 2]
    assert rank_regularization(alpha, 0.6, 0.5)[0].item() == 0.0
    assert rank_regularization(torch.tensor([0.5]), 0.7, 0.15)[0].item() == 0.0  # no low group


def _scn(**kw):
    torch.manual_seed(0)
    return SCNTask(Backbone(TINY_BACKBONE), num_classes=3, num_train=6, **kw)


def test_weighted_logits_and_wce():
    t = _scn()
    d = t.backbone.num_features
    with torch.no_grad():
        t.importance.fc.weight.zero_()
        t.importance.fc.bias.fill_(math.log(3.0))  # alpha = sigmoid(log 3) = 0.75
        t.fc.weight.zero_()
        t.fc.bias.zero_()
        t.fc.weight[0, 0] = 2.0
    x = torch.zeros(1, d)
    x[0, 0] = 1.0
    logits, alpha = t._heads(x)
    assert alpha.item() == pytest.approx(0.75)
    assert logits.tolist()[0] == pytest.approx([1.5, 0.0, 0.0])
    # CE for label 0: -log(e^1.5 / (e^1.5 + 2)) = log(1 + 2 e^-1.5)
    ce = F.cross_entropy(logits, torch.tensor([0]))
    assert ce.item() == pytest.approx(math.log(1 + 2 * math.exp(-1.5)), rel=1e-6)


def test_relabel_rule():
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.4, 0.1], [0.3, 0.35, 0.35], [0.15, 0.3, 0.55]])
    labels = torch.tensor([0, 0, 1, 1])
    new, changed = relabel_rule(probs, labels, margin=0.2)
    # 0.7-0.1=0.6 > 0.2 -> 1; label already max; 0 gap; 0.55-0.3=0.25 > 0.2 -> 2
    assert new.tolist() == [1, 0, 1, 2] and changed.tolist() == [True, False, False, True]
    assert relabel_rule(probs, labels, margin=0.3)[0].tolist() == [1, 0, 1, 1]


@pytest.mark.parametrize("scope,expected", [("low", [-1, -1, 2, -1]), ("all", [1, -1, 2, -1])])
def test_relabel_scope_and_start(scope, expected):
    t = _scn(relabel_epoch=3, relabel_scope=scope, margin_2=0.2)
    batch = {"index": torch.tensor([0, 1, 2, 3]), "label": torch.tensor([0, 0, 1, 0])}
    logits = torch.log(torch.tensor([[0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]]))
    out = {"logits": logits, "target": batch["label"], "low_group": torch.tensor([False, False, True, True])}
    t.on_epoch_start(1, 10)  # epoch 2 (1-based) < relabel_epoch 3: inactive
    t.after_optimizer_step(batch, out)
    assert (t.relabels == -1).all()
    t.on_epoch_start(2, 10)
    t.after_optimizer_step(batch, out)
    assert t.relabels[:4].tolist() == expected
    # the table overrides the data set's label from then on (public code's write-back)
    assert t.current_labels(batch["label"], batch["index"]).tolist()[2] == 2


def test_scn_gamma_weighting():
    t_sum, t_paper = _scn(), _scn(gamma=0.5)
    t_paper.load_state_dict(t_sum.state_dict())
    batch = {"image": torch.randn(6, 3, 32, 32), "label": torch.tensor([0, 1, 2, 0, 1, 2]),
             "index": torch.arange(6)}
    torch.manual_seed(1)
    a = t_sum(batch)
    torch.manual_seed(1)
    b = t_paper(batch)
    assert a["loss"].item() == pytest.approx((a["rr"] + a["wce"]).item(), rel=1e-5)
    assert b["loss"].item() == pytest.approx(0.5 * (b["rr"] + b["wce"]).item(), rel=1e-5)


def test_slm_label_logit_init():
    m = init_label_logits(torch.tensor([2, 0]), num_classes=7)
    p = torch.softmax(m, 1)
    assert m[0, 2].item() == 5.0
    assert p[0, 2].item() == pytest.approx(0.97, abs=1e-6)
    assert p[0, 0].item() == pytest.approx(0.03 / 6, abs=1e-6)
    assert p[1, 0].item() == pytest.approx(0.97, abs=1e-6)


def _authors_ramp_u(e, ns, alpha, beta):
    # transcription of ramp_u in models/slm.py (HaipengMing/SLM-AEA), numpy exp as there
    return np.exp(-(alpha - (e / ns) / beta) ** 2) if e <= beta * ns else 1


def _authors_ramp_d(e, ns, alpha, beta):
    return 1 if e <= beta * ns else np.exp(-(alpha - beta / (e / ns)) ** 2)


def test_slm_ramps_equal_the_authors_functions_every_iteration():
    ns, epochs, alpha, beta = 173, 40, 1.6, 7  # 40-epoch schedule, RAF-DB-like epoch length
    worst = 0.0
    for num_iter in range(ns * epochs):
        ru, rd = official_ramps(num_iter, ns, alpha, beta)
        worst = max(worst, abs(ru - _authors_ramp_u(num_iter, ns, alpha, beta)),
                    abs(rd - _authors_ramp_d(num_iter, ns, alpha, beta)))
    assert worst <= 1e-12
    # the numbers: r_u at epoch 7 is 0.70, r_u rises, then r_d decays
    assert official_ramps(7 * ns, ns)[0] == pytest.approx(math.exp(-0.36))
    assert official_ramps(0, ns) == (pytest.approx(math.exp(-1.6**2)), 1.0)
    assert official_ramps(7 * ns + 1, ns)[0] == 1.0 and official_ramps(40 * ns, ns)[1] < 0.2
    # time-scaled: identical at 40 epochs, stretched for 8
    assert all(time_scaled_ramps(i, ns, 40) == official_ramps(i, ns) for i in range(0, ns * 40, 97))
    assert time_scaled_ramps(7 * 20, 100, 8) == pytest.approx(official_ramps(7 * 100, 100))


def test_slm_task_evaluates_ramps_per_iteration():
    task = build_task("slm_aea", backbone={"name": "test_resnet"}, num_classes=3, num_train=6,
                      train_labels=[0, 1, 2, 0, 1, 2], use_aea=False)
    task.set_steps_per_epoch(5)
    batch = {"index": torch.tensor([0, 1]), "label": torch.tensor([0, 1])}
    out = {"logits": torch.zeros(2, 3)}
    seen = []
    for epoch in range(2):
        task.on_epoch_start(epoch, 40)
        for _ in range(5):
            task.after_optimizer_step(batch, out)
            seen.append(task.r_u)
    assert seen == [official_ramps(i, 5)[0] for i in range(10)]
    with pytest.raises(ValueError, match="ramp_schedule"):
        build_task("slm_aea", backbone={"name": "test_resnet"}, num_classes=3, num_train=2,
                   ramp_schedule="epoch")


def test_slm_label_logit_update_hand_and_autograd():
    m = torch.zeros(1, 2)
    new = label_logit_update(m, torch.tensor([[0.9, 0.1]]), torch.tensor([1]), r_u=0.5, r_d=0.5, lr=2.0)
    # grad = 0.5*([.5,.5]-[.9,.1]) + 0.5*([.5,.5]-[0,1]) = [0.05, -0.05]; m - 2*grad
    assert new.tolist()[0] == pytest.approx([-0.1, 0.1])
    torch.manual_seed(0)
    m = torch.randn(5, 4, requires_grad=True)
    p = torch.softmax(torch.randn(5, 4), 1)
    y = torch.tensor([0, 1, 2, 3, 0])
    loss = 0.3 * F.cross_entropy(m, p) + 0.7 * F.cross_entropy(m, y)
    loss.backward()
    ref = m.detach() - 200.0 * m.grad
    got = label_logit_update(m.detach(), p, y, 0.3, 0.7, 200.0)
    torch.testing.assert_close(got, ref)


def test_anchoring_train_vs_eval():
    a = ExpressionAnchor(2)
    a.train()
    out = a(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # batch mean [2, 3], w = 1
    assert out.tolist() == [[3.0, 5.0], [5.0, 7.0]]
    assert a.running_mean.tolist() == [2.0, 3.0]
    a(torch.tensor([[0.0, 0.0], [2.0, 2.0]]))  # mean [1, 1]: 0.9*[2,3] + 0.1*[1,1]
    assert a.running_mean.tolist() == pytest.approx([1.9, 2.8])
    a.eval()
    x = torch.tensor([[1.0, 1.0]])
    alone = a(x)
    with_mates = a(torch.cat([x, torch.tensor([[10.0, -10.0]])]))[:1]
    assert alone.tolist()[0] == pytest.approx([2.9, 3.8])
    assert torch.equal(alone, with_mates)  # running mean: batch-independent
    b = ExpressionAnchor(2, eval_mode="batch")
    b.load_state_dict(a.state_dict())
    b.eval()
    assert not torch.equal(b(x), b(torch.cat([x, torch.tensor([[10.0, -10.0]])]))[:1])  # public code
