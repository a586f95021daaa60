"""Spectral (Eq. 4) and BN-sparsity (Eq. 6) regularisers."""

import pytest
import torch
from torch import nn

from restbench.training.regularizers import BNSparsity, Regularizer, SpectralRegularizer


def orthonormal(rows, cols, seed):
    """A rows x cols matrix with orthonormal rows (rows <= cols) or columns (rows > cols)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(max(rows, cols), min(rows, cols), generator=g, dtype=torch.float64))
    return (q.t() if rows <= cols else q).float()


def small_net():
    return nn.Sequential(
        nn.Conv1d(2, 4, 3),  # (4, 6): wide, orthonormal rows possible
        nn.BatchNorm1d(4),
        nn.Conv1d(4, 20, 3),  # (20, 12): tall, orthonormal columns possible
        nn.BatchNorm1d(20),
        nn.Flatten(),
        nn.Linear(20 * 6, 7),  # wide linear
        nn.Linear(7, 9),  # tall linear
    )


def orthogonalise(net):
    with torch.no_grad():
        for i, m in enumerate(m for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Linear))):
            out = m.weight.shape[0]
            flat = m.weight.reshape(out, -1)
            m.weight.copy_(orthonormal(out, flat.shape[1], i).reshape(m.weight.shape))
    return net


def test_spectral_zero_for_orthogonal_and_positive_otherwise():
    torch.manual_seed(0)
    net = orthogonalise(small_net())
    reg = SpectralRegularizer(lam=3e-3)
    assert isinstance(reg, Regularizer)
    assert reg.loss(net).item() == pytest.approx(0.0, abs=1e-9)
    random = small_net()
    value = reg.loss(random)
    assert value.item() > 1e-3
    # the value is lam * sum ||G - I||_F^2 over the smaller Gram of each layer
    manual = 0.0
    for m in random.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            w = m.weight.detach().reshape(m.weight.shape[0], -1)
            g = w @ w.t() if w.shape[0] <= w.shape[1] else w.t() @ w
            manual += ((g - torch.eye(g.shape[0])) ** 2).sum().item()
    assert value.item() == pytest.approx(3e-3 * manual, rel=1e-5)
    value.backward()
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in random.modules() if isinstance(m, (nn.Conv1d, nn.Linear)))
    assert reg.after_backward(random) is None


def test_spectral_descriptions_and_authors_variant():
    soft = SpectralRegularizer(lam=1e-3)
    assert "smaller Gram" in soft.description and soft.config()["mode"] == "soft-orthogonality"
    assert soft.config()["lambda_o"] == 1e-3 and soft.config()["norm"] == "frobenius-squared"
    authors = SpectralRegularizer(lam=1e-3, mode="authors-code")
    assert authors.config()["gram"] == "in*k x in*k" and "public REST code" in authors.description
    # the (in*k) x (in*k) Gram of a wide weight cannot reach I: the authors' term stays positive
    wide = nn.Conv1d(2, 4, 3)
    with torch.no_grad():
        wide.weight.copy_(orthonormal(4, 6, 0).reshape(4, 2, 3))
    assert soft.penalty(wide).item() == pytest.approx(0.0, abs=1e-9)
    # rank 4 in a 6x6 Gram: two unit eigenvalue gaps remain, unsquared norm sqrt(2)
    assert authors.penalty(wide).item() == pytest.approx(2 ** 0.5, rel=1e-5)
    with pytest.raises(ValueError):
        SpectralRegularizer(mode="nope")


def test_bn_sparsity_adds_lam_sign_gamma_to_grads():
    torch.manual_seed(0)
    net = small_net().double()  # float64: lam * sign must show exactly next to O(1) gradients
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)]
    with torch.no_grad():
        bns[0].weight[1] = 0.0  # sign(0) = 0: no push
        bns[0].weight[2] = -0.5
    net(torch.randn(5, 2, 10, dtype=torch.float64)).pow(2).sum().backward()
    before = {id(p): p.grad.clone() for p in net.parameters()}
    reg = BNSparsity(lam=1e-5)
    assert isinstance(reg, Regularizer) and reg.loss(net) is None
    reg.after_backward(net)
    for bn in bns:
        assert torch.allclose(bn.weight.grad - before[id(bn.weight)], 1e-5 * torch.sign(bn.weight.detach()), atol=1e-12, rtol=0)
        assert torch.equal(bn.bias.grad, before[id(bn.bias)])
    assert bns[0].weight.grad[1] == before[id(bns[0].weight)][1]
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            assert torch.equal(m.weight.grad, before[id(m.weight)])
    assert reg.config() == {"name": "bn-sparsity", "lambda_g": 1e-5, "applied": "subgradient after backward"}
