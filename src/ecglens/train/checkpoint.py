# temporary: removed after the merge (the model file moved to ecglens.artifact.checkpoint)
from ..artifact.checkpoint import (FORMAT, Checkpoint, list_pretrained, load_checkpoint,  # noqa: F401, I001
                                   read_checkpoint_metadata, resolve_checkpoint, save_checkpoint)
