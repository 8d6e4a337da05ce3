"""Load test: N sessions open Explain links at the same moment through Streamlit's own websocket
protocol (``/_stcore/stream``, the BackMsg/ForwardMsg protobufs Streamlit ships): no browser,
so the client costs almost nothing and the server has the cores.

Each session opens ``/Explain?sample=<photo>&method=<method>`` on a new connection (as a reopened
link does), for R rounds. Reported: p50/p95 time to the map (the first image captioned
"<method> for “<class>”") and to the end of the script run, errors (exception elements and
error messages), cross-talk (a session shown another session's photo or class) and, when this
script starts the server itself, the first paint of a cold server and the server's peak memory.

    python bench/load.py --sessions 20 --rounds 2              # starts its own server
    python bench/load.py --url http://127.0.0.1:8501 --sessions 4

Traffic goes to the loopback address only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("gradcam", "cam", "saliency", "guided_backprop", "guided_gradcam")
TITLES = {"gradcam": "Grad-CAM", "cam": "CAM", "saliency": "Saliency",
          "guided_backprop": "Guided backprop", "guided_gradcam": "Guided Grad-CAM",
          "occlusion": "Occlusion"}


@dataclass
class Visit:
    """One session's page run."""

    session: int
    round: int
    sample: str
    method: str
    first_paint: float | None = None  # the sidebar's first navigation link
    to_map: float | None = None
    to_end: float | None = None
    errors: list[str] = field(default_factory=list)
    crosstalk: list[str] = field(default_factory=list)


def plan(sessions: int, samples: list[str]) -> list[tuple[str, str]]:
    """Each session its own photo and method (cycling when there are more sessions)."""
    pairs = [(s, m) for m in METHODS for s in samples]
    return [pairs[(i * 7) % len(pairs)] for i in range(sessions)]


def unescape(markdown: str) -> str:
    out, escaped = [], False
    for c in markdown:
        if escaped or c != "\\":
            out.append(c)
            escaped = False
        else:
            escaped = True
    return "".join(out).replace("\u200b", "")


async def visit(url: str, number: int, round_: int, sample: str, method: str, expected: dict,
                titles: dict, timeout: float) -> Visit:
    import websockets
    from streamlit.proto.Alert_pb2 import Alert
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    result = Visit(number, round_, sample, method)
    parts = urlsplit(url)
    query = urlencode({"sample": sample, "method": method})
    message = BackMsg()
    message.rerun_script.query_string = query
    message.rerun_script.page_name = "Explain"
    message.rerun_script.context_info.url = f"{url}/Explain"
    start = time.perf_counter()
    try:
        async with websockets.connect(f"ws://{parts.netloc}/_stcore/stream",
                                      subprotocols=["streamlit"], origin=url, max_size=None,
                                      open_timeout=timeout) as ws:
            await ws.send(message.SerializeToString())
            deadline = start + timeout
            while True:
                raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.perf_counter()))
                forward = ForwardMsg()
                forward.ParseFromString(raw)
                kind = forward.WhichOneof("type")
                now = time.perf_counter() - start
                if kind == "script_finished":
                    if forward.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                        result.to_end = now
                        break
                    continue
                if kind != "delta" or forward.delta.WhichOneof("type") != "new_element":
                    continue
                element = forward.delta.new_element
                what = element.WhichOneof("type")
                if what == "page_link" and result.first_paint is None:
                    result.first_paint = now
                elif what == "exception":
                    result.errors.append(f"exception: {element.exception.message[:200]}")
                elif what == "alert" and element.alert.format == Alert.ERROR:
                    result.errors.append(f"error: {unescape(element.alert.body)[:200]}")
                elif what == "imgs":
                    for image in element.imgs.imgs:
                        caption = unescape(image.caption)
                        if " · " in caption and caption.split(" · ")[1].count("x") == 1 \
                                and caption.split(" · ")[0] != titles[sample]:
                            result.crosstalk.append(f"photo: {caption}")
                        if caption.startswith(f"{TITLES[method]} for “"):
                            result.to_map = result.to_map or now
                            shown = caption.split("“")[1].split("”")[0]
                            if shown != expected[sample]:
                                result.crosstalk.append(f"class: {shown} (expected "
                                                        f"{expected[sample]})")
    except (TimeoutError, OSError, Exception) as exc:  # a failed visit is a measured error
        result.errors.append(f"{type(exc).__name__}: {exc}"[:200])
    if result.to_map is None and not result.errors:
        result.errors.append("no map was shown")
    return result


def reference(samples: list[str]) -> tuple[dict, dict]:
    """The class each photo's map must name (the offline default model's top class), and the
    photos' titles: computed once here, before any load, to detect cross-talk."""
    from explain.data.samples import SAMPLES, sample_image
    from models import DEFAULT_BACKBONE, load_backbone

    backbone = load_backbone(DEFAULT_BACKBONE, device="cpu")
    expected = {s: backbone.predict(sample_image(s), k=1)[0].name for s in samples}
    return expected, {s: SAMPLES[s].title for s in samples}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_round(url: str, round_: int, pairs, expected, titles, timeout) -> list[Visit]:
    return list(await asyncio.gather(*(
        visit(url, i, round_, sample, method, expected, titles, timeout)
        for i, (sample, method) in enumerate(pairs))))


def run(coroutine):
    """``asyncio.run`` on a thread of its own: the caller may already run an event loop (a
    test process with Playwright's sync API has one on its main thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(cache: str | None = None):
    """A fresh `python -m ui.serve` on a free loopback port: yields (url, process, started)."""
    port = free_port()
    env = {**os.environ, "CNN_LENS_DEVICE": os.environ.get("CNN_LENS_DEVICE", "cpu")}
    if cache:
        env["CNN_LENS_CACHE"] = cache
    log = open(ROOT / "test-output" / f"load-server-{port}.log", "w")  # noqa: SIM115
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "ui.serve", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true"], cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read() == b"ok":
                    break
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the server did not start; see {log.name}")
            time.sleep(0.1)
        yield url, process, started
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _descendants(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


def memory(process: subprocess.Popen) -> tuple[float, float]:
    """(current, peak) resident memory in GB of the server process and its helpers (the
    projection process): the sum of each one's current and of each one's peak."""
    kb = [0, 0]
    for pid in (process.pid, *_descendants(process.pid)):
        fields = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        kb = [kb[0] + int(fields.get("VmRSS", "0 kB").split()[0]),
              kb[1] + int(fields.get("VmHWM", "0 kB").split()[0])]
    return kb[0] / 1e6, kb[1] / 1e6


def summary(visits: list[Visit]) -> dict:
    maps = [v.to_map for v in visits if v.to_map is not None]
    ends = [v.to_end for v in visits if v.to_end is not None]
    return {"sessions": len(visits), "errors": sum(bool(v.errors) for v in visits),
            "crosstalk": sum(bool(v.crosstalk) for v in visits),
            "map_p50": percentile(maps, 0.5), "map_p95": percentile(maps, 0.95),
            "end_p50": percentile(ends, 0.5), "end_p95": percentile(ends, 0.95),
            "end_max": max(ends) if ends else None}


def load(url: str, sessions: int, rounds: int, timeout: float = 120.0,
         samples: list[str] | None = None) -> tuple[list[dict], list[Visit]]:
    from explain.data.samples import SAMPLES

    samples = samples or list(SAMPLES)
    expected, titles = reference(samples)
    pairs = plan(sessions, samples)
    rounds_out, visits = [], []
    for r in range(rounds):
        got = run(run_round(url, r, pairs, expected, titles, timeout))
        visits += got
        rounds_out.append({"round": r + 1, **summary(got)})
    return rounds_out, visits


def first_paint(url: str) -> float | None:
    """The first visitor of a fresh server: seconds until the sidebar's navigation arrives."""
    from explain.data.samples import SAMPLES

    sample = next(iter(SAMPLES))
    got = run(visit(url, 0, 0, sample, "gradcam", {sample: "?"},
                    {sample: SAMPLES[sample].title}, 120))
    return got.first_paint


def fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start a fresh one)")
    parser.add_argument("--sessions", type=int, nargs="+", default=[20])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    (ROOT / "test-output").mkdir(exist_ok=True)
    report: dict = {"runs": []}
    with contextlib.ExitStack() as stack:
        if args.url:
            url, process = args.url, None
        else:
            import tempfile

            cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="cnn-lens-load-"))
            url, process, started = stack.enter_context(server(cache))
            paint = first_paint(url)
            report["cold_first_paint_s"] = paint
            print(f"cold server: healthy after {time.perf_counter() - started:.1f} s; first "
                  f"paint {fmt(paint)} s after the first request")
        for n in args.sessions:
            rounds, visits = load(url, n, args.rounds, args.timeout)
            for r in rounds:
                print(f"{n:3d} sessions, round {r['round']}: map p50 {fmt(r['map_p50'])} s, "
                      f"p95 {fmt(r['map_p95'])} s; run ended p50 {fmt(r['end_p50'])} s, p95 "
                      f"{fmt(r['end_p95'])} s, max {fmt(r['end_max'])} s; errors {r['errors']}, "
                      f"cross-talk {r['crosstalk']}")
            for v in visits:
                if v.errors or v.crosstalk:
                    print(f"  session {v.session} ({v.sample}, {v.method}): {v.errors + v.crosstalk}")
            entry = {"sessions": n, "rounds": rounds, "problems": [
                asdict(v) for v in visits if v.errors or v.crosstalk]}
            if process is not None:
                current, peak = memory(process)
                entry["server_rss_gb"], entry["server_peak_gb"] = current, peak
                print(f"  server memory: {current:.2f} GB now, peak {peak:.2f} GB")
            report["runs"].append(entry)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
