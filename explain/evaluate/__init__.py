"""How far a map can be trusted: faithfulness (deletion and insertion), the randomization sanity
check, the pointing game, two models' agreement, and a dataset slice's scores."""
