"""Report sections of the select and train stages: what was selected, and how the final
run's training went (loss curve, throughput)."""

from __future__ import annotations

from instructmix.layout import TRAIN
from instructmix.report.blocks import figure, na, note, section, table
from instructmix.report.figures import bar_chart, line_chart
from instructmix.report.fmt import finite, num, seconds
from instructmix.report.inputs import RunData, absent, seconds_of, summary_of

SMOOTH = 5  # logged steps in the moving average of the loss curve


def moving_average(values: list, k: int) -> list[float | None]:
    """Trailing mean over the last `k` finite values (None where there is none yet)."""
    out, window = [], []
    for v in values:
        f = finite(v)
        if f is not None:
            window = [*window, f][-k:]
        out.append(sum(window) / len(window) if window else None)
    return out


def _loss_figure(history: list[dict]) -> str:
    steps = [h.get("step") for h in history]
    losses = [h.get("loss") for h in history]
    series = {"training loss (mean over the logging window)": (steps, losses)}
    if len(history) >= 2 * SMOOTH:
        series[f"moving average over {SMOOTH} logged steps"] = (steps,
                                                                 moving_average(losses, SMOOTH))
    return line_chart(series, title="Training loss", xlabel="optimizer step",
                      ylabel="loss (cross-entropy per token)")


def training_section(data: RunData) -> dict:
    blocks = []
    if data.dones.get("train") is not None:
        s = summary_of(data, "train")
        blocks.append(table(
            ["optimizer steps", "final loss", "tokens/s", "model", "seconds"],
            [[s.get("steps"), num(s.get("final_loss")), num(s.get("tokens_per_s"), 1),
              s.get("model"), seconds(seconds_of(data, "train"))]],
            caption="final loss = the last logged training loss; tokens/s = training tokens "
            "per second over all workers at the last log; seconds = wall-clock time of the "
            "stage."))
    history = [h for h in data.history or [] if isinstance(h, dict)]
    if data.history is None:
        return section("Training (final run)", [*blocks, absent(data, TRAIN.history)])
    steps = [h.get("step") for h in history]
    blocks += [
        figure(_loss_figure(history)),
        figure(line_chart({"tokens per second, all workers": (
            steps, [h.get("tokens_per_s") for h in history])},
            title="Throughput", xlabel="optimizer step", ylabel="tokens per second")),
        note("loss = mean per-token cross-entropy of the response tokens of the training "
             "batches since the previous log, averaged over workers; tokens per second = "
             "training tokens processed per second over all workers since the start."),
    ]
    return section("Training (final run)", blocks)


def selection_section(data: RunData, strategy: str) -> dict:
    title = f"Selection ({strategy})"
    if data.dones.get("select") is None:
        return section(title, [na(f"not available: the select stage has not finished in "
                                  f"{data.layout.stage_dir('select')}")])
    s = summary_of(data, "select")
    pc = s.get("per_category") or {}
    cats = sorted(pc)
    return section(title, [
        table(["strategy", "selected items", "pool items", "held out", "tokens"],
              [[strategy, s.get("selected"), s.get("pool"), s.get("held_out"),
                s.get("tokens")]],
              caption="selected items = training items chosen by the strategy under the "
              "budget; pool items = accepted items available; held out = pool items kept "
              "out of selection (probe validation); tokens = tokens of the selection."),
        figure(bar_chart(cats, [pc[c] for c in cats],
                         title=f"Selected items per category ({strategy})",
                         xlabel="selected items", integer=True)),
    ])
