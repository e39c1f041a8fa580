"""The model zoo, each model a small ``nn.Module`` (or closed-form class) composed from ``fastrec.nn`` layers.

Subpackages, imported on demand (``from fastrec.models import ctr``):

- ``ctr``: CTR ranking models (LR, FM, FFM, DeepFM, xDeepFM, NFM, AFM, Wide & Deep, DCN, DCN-v2, DLRM, AutoInt, DIN,
  BST, MMoE);
- ``cf``: collaborative filtering and retrieval (the MF family, NCF, autoencoders, neighbourhood CF, two-tower);
- ``seq``: sequential and session models (GRU4Rec, SASRec, BERT4Rec).
"""
