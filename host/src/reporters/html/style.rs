//! The report page's style sheet, apart from the code that writes the page.

pub(super) const STYLE: &str = "
:root{--ok:#1a7f37;--bad:#cf222e;--wait:#8250df;--run:#0969da;--off:#8c959f;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa}
*{box-sizing:border-box}body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;padding:16px;max-width:1100px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .5em;border-bottom:1px solid var(--line)}h3{font-size:1em;margin:0 0 .4em}
.badge{display:inline-block;padding:0 .55em;border-radius:1em;color:#fff;font-size:.8em;vertical-align:middle}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}.badge.wait{background:var(--wait)}.badge.run{background:var(--run)}.badge.off{background:var(--off)}
.tag{font-size:.75em;border:1px solid var(--run);color:var(--run);border-radius:1em;padding:0 .5em}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;margin:.4em 0}.facts dt{color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto}svg.graph{display:block;max-width:none}
.edge{stroke:var(--muted);stroke-width:1.5}.node rect{stroke-width:2;fill:var(--soft)}.node text{font-size:13px;fill:var(--fg)}
.node.ok rect{stroke:var(--ok)}.node.bad rect{stroke:var(--bad);fill:#ffebe9}.node.wait rect{stroke:var(--wait)}.node.run rect{stroke:var(--run)}.node.off rect{stroke:var(--off);stroke-dasharray:4 3}
.timeline{font-size:.85em}.lane{display:grid;grid-template-columns:minmax(6em,12em) 1fr 5.5em;gap:.5em;align-items:center;margin:2px 0}
.lane-name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.lane-time{text-align:right;color:var(--muted)}
.track{position:relative;height:14px;background:var(--soft);border-radius:3px}.bar{position:absolute;top:0;bottom:0;border-radius:3px;background:var(--off)}
.bar.ok{background:var(--ok)}.bar.bad{background:var(--bad)}.bar.wait{background:var(--wait)}.bar.run{background:var(--run)}
.axis{display:flex;justify-content:space-between;color:var(--muted);margin-left:calc(min(12em,30%) + .5em);margin-right:6em}
section.stage{border:1px solid var(--line);border-left:5px solid var(--off);border-radius:6px;padding:.6em .8em;margin:.7em 0}
section.stage.ok{border-left-color:var(--ok)}section.stage.bad{border-left-color:var(--bad)}section.stage.wait{border-left-color:var(--wait)}section.stage.run{border-left-color:var(--run)}
.message{color:var(--bad);margin:.3em 0;overflow-wrap:anywhere}.summary{margin:.3em 0;overflow-wrap:anywhere}.refused{color:var(--bad)}
table{border-collapse:collapse;font-size:.85em}th,td{text-align:left;padding:.15em .6em;border-bottom:1px solid var(--line)}code{font-size:.85em;overflow-wrap:anywhere}
details.log pre{background:var(--soft);padding:.5em;overflow-x:auto;max-height:30em;font-size:.8em;white-space:pre-wrap;overflow-wrap:anywhere}
@media (max-width:600px){body{padding:8px;font-size:14px}.lane{grid-template-columns:6em 1fr 4.5em}.axis{margin-left:6.5em;margin-right:5em}}
";
