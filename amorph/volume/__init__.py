"""The zero-pressure volume: P(V) fits and the rules that move a volume (:mod:`.eos`), and what the
volume search and check runs find (:mod:`.results`); the flows in :mod:`amorph.flows.volume` chain
MD jobs around them."""
