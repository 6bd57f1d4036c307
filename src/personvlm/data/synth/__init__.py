"""The synthetic pedestrian engine: labelled person crops rendered from attribute sets.

``render_person(values, seed)`` draws one crop (pinned attributes, the rest sampled from
MSP60K-like marginals) and returns the image with its *visible* description and the scene;
``write_dataset`` writes many of them in parallel as MSP60K-format JSONL.
"""

from personvlm.data.synth.dataset import SynthError, SynthSummary, write_dataset
from personvlm.data.synth.render import Rendered, render_person
from personvlm.data.synth.sampling import Marginals, MarginalsError, marginals_from_msp60k, sample_outfit

__all__ = [
    "Marginals", "MarginalsError", "Rendered", "SynthError", "SynthSummary", "marginals_from_msp60k",
    "render_person", "sample_outfit", "write_dataset",
]
