"""A task's data, from its source to batches of token ids.

    sources.load_examples     synthetic, own files (own_files), GLUE TSV or TFDS (glue)
      -> features.tokenize    token ids with the teacher's tokenizer, cached on disk
      -> batching             which examples form each batch, per (seed, epoch)

``kd_keras.backends.make_dataset`` turns a plan of batches into what the running
backend reads (a tf.data pipeline, or numpy batches for JAX).
"""
