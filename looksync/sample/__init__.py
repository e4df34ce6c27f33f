"""The sample catalog: three fictional vendors' feeds, product images, planted faults and looks,
generated deterministically from a seed, plus a small HTTP server that serves the images.

    manifest = generate_sample(Path("var/sample"), size=300, seed=7, fault_rate=0.05)
    with serve_sample(manifest.root) as server: ...
"""

from looksync.sample.drawing import draw_garment
from looksync.sample.faults import FAULT_REASONS
from looksync.sample.generate import SampleManifest, generate_sample
from looksync.sample.server import SampleServer, serve_sample

__all__ = ["FAULT_REASONS", "SampleManifest", "SampleServer", "draw_garment", "generate_sample", "serve_sample"]
