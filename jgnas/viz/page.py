"""The run report page: `build(run_dir)` writes report/index.html and the PNG figures it shows.

The page is static and self-contained: inline CSS, no script, no network fetch; the figures are
PNG files next to it, linked by relative name, so the folder can be copied or opened anywhere.
"""

from __future__ import annotations

import html
import json
import pathlib
from collections.abc import Callable

from jgnas import data as data_lib
from jgnas.viz import arch as arch_viz
from jgnas.viz import results, search, users
from jgnas.viz.common import value_label

REQUIRED = ("config.yaml", "history.jsonl", "final_metrics.json", "best_arch.json", "best_model")
NO_CURVES = "no learning curves recorded in this run"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
  background:#fafafa}
main{max-width:1280px;margin:0 auto;padding:16px 28px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:32px 0 8px;
  border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:12px 0 6px}
.meta{color:#555}nav a{margin-right:14px}
figure{margin:8px 0;background:#fff;border:1px solid #e3e3e3;padding:8px;overflow-x:auto}
figure img{display:block;max-width:100%;height:auto}
figcaption{color:#555;font-size:13px;margin-top:6px}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums;
  white-space:nowrap}
tr.searched td:first-child{border-left:4px solid #1f77b4}tr.winner{font-weight:600}
.neg{color:#b22}.pos{color:#183}.note{color:#666;font-style:italic}
.cards{display:flex;flex-wrap:wrap;gap:16px}
.card{flex:1 1 360px;background:#fff;border:1px solid #e3e3e3;padding:10px 12px}
.card ol{margin:4px 0;padding-left:26px}.card li{margin:1px 0}
.cols{display:flex;gap:16px}.cols>div{flex:1 1 0;min-width:0}
.score{color:#d62728;font-variant-numeric:tabular-nums}
"""

Log = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def check_run_dir(run_dir: pathlib.Path) -> None:
    """Raises DataError (one line naming the file) unless run_dir holds a finished run."""
    if not run_dir.is_dir():
        raise data_lib.DataError(f"{run_dir}: no such run directory")
    for name in REQUIRED:
        if not (run_dir / name).exists():
            raise data_lib.DataError(f"{run_dir / name}: missing; is the search finished?")


def _json(path: pathlib.Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise data_lib.DataError(f"{path}: not valid JSON ({e})") from None


def _history(path: pathlib.Path) -> list[dict]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise data_lib.DataError(f"{path}:{n}: not valid JSON ({e})") from None
    return out


def _archive(run_dir: pathlib.Path, history: list[dict]):
    """history.jsonl as `Candidate`s of the run's space (what jgnas.report's plots take)."""
    from jgnas import config as config_lib
    from jgnas.search.archive import Candidate

    space = config_lib.load(run_dir / "config.yaml").space
    return [Candidate.from_json(h, space) for h in history]


def build(
    run_dir: str | pathlib.Path,
    out: str | pathlib.Path | None = None,
    *,
    user: str | None = None,
    n_users: int = 3,
    k: int = 10,
    log: Log = _quiet,
) -> pathlib.Path:
    """Writes the report of a finished run: `out/index.html` (default out: RUN_DIR/report) and the
    figures next to it. Returns the path of index.html.

    Args:
      run_dir: a finished run directory (`jgnas search`).
      out: the report folder (created; files of the same names are replaced).
      user: raw id of the user whose ego-graph is drawn (default: the median user by number of
        training interactions, `users.pick_users`).
      n_users: how many users' top-K lists to show beside their histories.
      k: the length of the top-K lists.
      log: progress lines.

    Raises DataError (a ValueError) with one line naming the file when the run is incomplete,
    and for an unknown user.
    """
    from jgnas import report, serve

    if k < 1:
        raise data_lib.DataError(f"--k: must be >= 1, got {k}")
    if n_users < 0:
        raise data_lib.DataError(f"--users: must be >= 0, got {n_users}")
    run_dir = pathlib.Path(run_dir)
    check_run_dir(run_dir)
    summary = _json(run_dir / "final_metrics.json")
    best = _json(run_dir / "best_arch.json")
    history = _history(run_dir / "history.jsonl")
    archive = _archive(run_dir, history)
    fitness = summary.get("fitness", "fitness")

    log("report: loading the winner and scoring users")
    rec = serve.load(run_dir)
    ds = rec.dataset
    shown = users.pick_users(ds, max(n_users, 1), first=user)
    lists = {raw: rec.recommend(raw, k=k) for raw in shown}  # checks the ids (DataError)
    item_index = {str(x): i for i, x in enumerate(ds.item_ids)}
    ego = shown[0]

    log("report: figures")
    out = pathlib.Path(out) if out is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    figs: dict[str, str | None] = {}
    report.plot_curve(archive, out / "search_curve.png", fitness)
    figs["curve"] = "search_curve.png"
    figs["dist"] = search.plot_distribution(history, out / "fitness_per_generation.png", fitness)
    genes, n_top, n_all = search.gene_shares(history)
    figs["genes"] = search.plot_genes(genes, n_top, n_all, out / "genes_top10.png")
    front = summary.get("pareto_front") or []
    figs["pareto"] = (
        search.plot_pareto(front, archive, fitness, out / "pareto_front.png") if front else None
    )
    figs["arch"] = arch_viz.draw(best, out / "best_arch.png")
    rows = summary.get("rows", [])
    figs["curves"] = results.plot_curves(rows, out / "learning_curves.png")
    figs["ego"] = users.draw_ego(
        ds, users.user_index(ds, ego), lists[ego], item_index, out / "ego_graph.png"
    )
    page = _page(run_dir, summary, best, rec.describe, figs, genes, (n_top, n_all), front, ds,
                 ego, {raw: lists[raw] for raw in shown[:n_users]})  # fmt: skip
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    log(f"report: {path}")
    return path


def _fig(name: str | None, alt: str, caption: str) -> str:
    if not name:
        return f'<p class="note">{html.escape(caption)}</p>'
    return (
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(alt)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _page(run_dir, summary, best, describe, figs, genes, counts, front, ds, ego, lists) -> str:
    """The HTML text. Long because it is the page's one template, section after section; each
    section's content comes from a helper."""
    e = html.escape
    fit = summary.get("fitness", "fitness")
    n_top, n_all = counts
    head = (
        f"{e(str(summary.get('strategy', '?')))} search: "
        f"{summary.get('candidates_evaluated', '?')} candidates evaluated "
        f"({summary.get('candidates_trained', '?')} trained, {summary.get('failed', 0)} failed) "
        f"in {summary.get('search_seconds', 0):.0f} s, retraining "
        f"{summary.get('final_seconds', 0):.0f} s on {e(str(summary.get('device', '?')))}. "
        f"Fitness: validation {e(fit)}."
    )
    sections = [
        ("search", "Search", _fig(figs["curve"], "search curve",
            f"Best-so-far and per-generation median validation {e(fit)} against the number of "
            "candidates evaluated; every dot is a candidate.")
         + _fig(figs["dist"], "fitness per generation",
            "Distribution of the fitness in each generation (box: quartiles, line: median).")),
        ("genes", "What the best candidates share", _fig(figs["genes"], "gene frequencies",
            f"Share of each gene value among the top 10 % ({n_top}) of the {n_all} distinct "
            "trained architectures (orange) against all of them (grey). Genes with a single "
            "value in this run are left out.")
         if figs["genes"] else '<p class="note">no gene varied among the trained candidates</p>'),
        ("pareto", "Pareto front", _pareto(figs["pareto"], front, fit)),
        ("winner", "The winner", _fig(figs["arch"], "winner architecture",
            f"<code>{e(describe)}</code> (best_arch.json). Boxes left to right: the input "
            "features, each layer (op, transform, activation; orange arrow: residual), the "
            "combination of the layer outputs (red dashed: the vectors it reads), the score.")
         + _genes_table(best)),
        ("curves", "Learning curves", _fig(figs["curves"], "learning curves",
            "Validation metric of the retrained finalists and baselines during retraining "
            "(mean ± std over seeds).") if figs["curves"]
         else f'<p class="note">{NO_CURVES}</p>'),
        ("table", "Final results", _table(summary)),
        ("ego", f"Around user {e(ego)}", _fig(figs["ego"], "ego graph",
            f"User {e(ego)}: training items (blue edges), the users sharing the most of them "
            "(grey edges), and the top-K recommended items in red with rank, title and score "
            "(orange edges: those users interacted with the recommended item). Capped at "
            f"{users.MAX_ITEMS} items and {users.MAX_CO_USERS} users for legibility.")),
        ("users", "Recommendations", _cards(ds, lists)),
    ]  # fmt: skip
    nav = " ".join(f'<a href="#{sid}">{title}</a>' for sid, title, _ in sections)  # escaped
    body = "\n".join(f'<section id="{sid}"><h2>{t}</h2>{c}</section>' for sid, t, c in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jgnas report: {e(str(summary.get("name", run_dir.name)))}</title>
<style>{CSS}</style></head>
<body><main>
<h1>{e(str(summary.get("name", run_dir.name)))}: {e(str(summary.get("dataset", "")))}</h1>
<p class="meta">{head}<br>Run directory: <code>{e(str(run_dir))}</code></p>
<nav>{nav}</nav>
{body}
</main></body></html>
"""


def _pareto(name: str | None, front: list[dict], fit: str) -> str:
    if not name:
        return ('<p class="note">no cost objective in this run (search.cost: none), so no Pareto '
                "front</p>")  # fmt: skip
    cost = search.cost_kind(front, fit)
    rows = "".join(
        f'<tr><td class="num">{n}</td><td><code>{html.escape(str(p["describe"]))}</code></td>'
        f'<td class="num">{float(p[fit]):.4f}</td><td class="num">{float(p[cost]):,.6g}</td></tr>'
        for n, p in enumerate(search.front_by_cost(front, fit), 1)
    )
    table = (f"<table><tr><th>#</th><th>architecture</th><th>valid {html.escape(fit)}</th>"
             f"<th>{html.escape(cost)}</th></tr>{rows}</table>")  # fmt: skip
    return (
        _fig(
            name,
            "Pareto front",
            f"Validation {html.escape(fit)} against {html.escape(cost)}"
            " of every trained candidate; the front is numbered as in the table.",
        )
        + table
    )


def _genes_table(arch: dict) -> str:
    _, rest = arch_viz.boxes(arch)
    if not rest:
        return ""

    def text(v) -> str:
        return value_label(v) if isinstance(v, (str, int, float, bool)) else json.dumps(v)

    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(text(v))}</td></tr>"
                    for k, v in rest.items())  # fmt: skip
    return f"<h3>Other genes</h3><table>{cells}</table>"


def _table(summary: dict) -> str:
    rows = summary.get("rows", [])
    if not rows:
        return '<p class="note">final_metrics.json has no rows</p>'
    e = html.escape
    metrics = results.table_metrics(rows)
    primary = results.primary_metric(summary)
    base, diffs = results.relative_to_best_baseline(rows, primary)
    tuned = any(r.get("tuned") for r in rows)
    fit = summary.get("fitness", "")
    head = ("<tr><th>model</th><th>architecture</th>" + ("<th>tuned</th>" if tuned else "")
            + "".join(f"<th>test {e(m)}</th>" for m in metrics)
            + f"<th>valid {e(fit)}</th>"
            + (f"<th>vs {e(base)} (test {e(primary)})</th>" if base else "") + "</tr>")  # fmt: skip
    lines = []
    for r, d in zip(rows, diffs):
        cls = ("searched " if results.is_searched(r) else "") + (
            "winner" if r["label"] == summary.get("winner") else ""
        )
        diff = ""
        if base:
            text = (
                "best baseline"
                if r["label"] == base
                else ("–" if d is None else results.signed_percent(d))
            )
            tone = "" if d is None or r["label"] == base else ("neg" if d < 0 else "pos")
            diff = f'<td class="num {tone}">{e(text)}</td>'
        lines.append(
            f'<tr class="{cls.strip()}"><td>{e(str(r["label"]))}</td>'
            f"<td><code>{e(str(r.get('describe', '')))}</code></td>"
            + (f"<td>{e(results.tuned_text(r))}</td>" if tuned else "")
            + "".join(f'<td class="num">{results.cell(r["test"].get(m))}</td>' for m in metrics)
            + f'<td class="num">{results.cell(r.get("valid", {}).get(fit))}</td>' + diff + "</tr>"
        )  # fmt: skip
    seeds = max((r.get("seeds", 0) for r in rows), default=0)
    note = (f"Test metrics, mean ± std over {seeds} seed{'s' if seeds != 1 else ''} (population "
            "std). Rows starting with "
            "<code>search#</code> are searched (blue edge), the others baselines; the winner is "
            "bold. " + (f"The last column is each row's relative difference to the best baseline "
                        f"({e(base)}) on test {e(primary)}." if base else
                        "No baseline in this run."))  # fmt: skip
    return f"<table>{head}{''.join(lines)}</table><p class='meta'>{note}</p>"


def _cards(ds, lists: dict[str, list[dict]]) -> str:
    if not lists:
        return '<p class="note">no users requested (--users 0)</p>'
    e = html.escape
    names = users.titles(ds)
    cards = []
    for raw, recs in lists.items():
        u = users.user_index(ds, raw)
        hist = users.history(ds, u)
        order = "latest first" if ds.train.timestamps.any() else "by item id"
        shown = "".join(f"<li>{e(str(names[i]))}</li>" for i in hist[:15])
        more = f"<p class='note'>… and {len(hist) - 15} more</p>" if len(hist) > 15 else ""
        top = "".join(
            f"<li>{e(r['title'] or r['item'])} <span class='score'>{r['score']:.3f}</span></li>"
            for r in recs
        )
        cards.append(
            f"<div class='card'><h3>user {e(raw)} · {len(hist)} training items</h3>"
            f"<div class='cols'><div><b>history</b> ({order})<ol>{shown}</ol>{more}</div>"
            f"<div><b>top-{len(recs)}</b> (score)<ol>{top}</ol></div></div></div>"
        )
    return f"<div class='cards'>{''.join(cards)}</div>"
