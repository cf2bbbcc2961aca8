"""The signals teachers and students give the Distiller.

A distillation loss names the signal it compares (`DistillationLoss.signal`);
students give them as the outputs and layer names below, teachers as the
keys of their signal dicts.
"""

#: Scores over the whole catalog, [batch, num_items].
LOGITS = "logits"
#: The query vector scored against the catalog, [batch, d].
QUERY_EMBEDDING = "query_embedding"
#: The encoder's hidden representation, [batch, h].
HIDDEN = "hidden"
#: A ranking model's score of a (query, item) pair, [batch, 1].
RATING = "rating"
