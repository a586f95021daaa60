"""A third-party method with its own hyperparameter, as a stranger would write it: TRADES
(Zhang et al. 2019), cross-entropy + beta x KL(clean || adversarial), with restbench's PGD."""

import torch
import torch.nn.functional as F

from restbench.api import NOT_IN_PAPER, Option, Phase, Recipe, hookimpl, pgd


class TradesStep:
    def __init__(self, beta: float, eps: float):
        self.beta, self.eps = beta, eps

    def __call__(self, model, x, y, ctx):
        model.eval()
        with torch.no_grad():
            clean_p = F.softmax(model(x), dim=1)

        def kl(logits, _):
            return F.kl_div(F.log_softmax(logits, dim=1), clean_p, reduction="none").sum(1)

        x_adv = pgd(model, x, y, eps=self.eps, steps=2, clip=(ctx.stats.min, ctx.stats.max),
                    generator=ctx.generator, loss_fn=kl)
        model.train()
        logits, logits_adv = model(x), model(x_adv)
        return F.cross_entropy(logits, y) + self.beta * F.kl_div(
            F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="batchmean")

    def config(self) -> dict:
        return {"name": "trades", "beta": self.beta, "eps": self.eps}


class Trades:
    id = "trades"
    version = "0.1.0"
    description = "TRADES: cross-entropy + beta x KL between clean and PGD predictions"
    citation = "Zhang et al., Theoretically Principled Trade-off between Robustness and Accuracy, ICML 2019"
    options = (
        Option("beta", float, 6.0, "weight of the robustness (KL) term", minimum=0.0, paper=NOT_IN_PAPER),
        Option("eps", float, 2.0, "PGD radius in uV", minimum=0.0, paper=NOT_IN_PAPER),
    )

    def recipe(self, context):
        step = TradesStep(context.options["beta"], context.options["eps"])
        return Recipe(train=Phase(step=step), description=self.description)


@hookimpl
def register_methods(register):
    register(Trades())
