"""Caption decoding: greedy, beam search and sampling, optionally constrained to the compact grammar.

    from personvlm.generation import CompactConstraint, GenerationConfig, generate

    prompt = [vocab.bos_id, vocab.style_id("compact")]
    constraint = CompactConstraint(vocab)                       # any parseable compact caption
    constraint = CompactConstraint.agreeing_with(vocab, desc)   # exactly desc's values
    ids = generate(model, visual, prompt, GenerationConfig(num_beams=3), constraint)
    captions = [vocab.decode(row) for row in ids]
"""

from personvlm.generation.config import GenerationConfig
from personvlm.generation.constraint import CompactConstraint
from personvlm.generation.search import Decoder, generate

__all__ = ["CompactConstraint", "Decoder", "GenerationConfig", "generate"]
