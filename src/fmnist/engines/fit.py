"""The ``keras`` engine: ``model.fit`` one epoch at a time, on any backend; the reference the compiled
engines are held to. It is fed the engine-independent shuffle order, so it sees the same batches."""

from __future__ import annotations

from fmnist.engines.batches import shuffle_order, steps_per_epoch


class KerasEngine:
    """``model.fit`` one epoch at a time, fed in the engine-independent shuffle order."""

    name = "keras"

    def __init__(self, model, splits, config, progress):
        import keras

        from fmnist.model import logits_view

        # fit trains the logits view (the loss from logits); its variables are the model's
        self.model, self.splits, self.config, self.progress = logits_view(model), splits, config, progress
        steps = steps_per_epoch(len(splits.y_train), config.batch_size)

        class _Bar(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                progress.start(self.epoch_number, steps)

            def on_train_batch_end(self, batch, logs=None):
                progress.advance(batch + 1)

        self._bar = _Bar() if progress.live else None
        self._steps = steps

    def train_epoch(self, epoch: int) -> dict:
        splits, config = self.splits, self.config
        order = shuffle_order(config.seed, epoch, len(splits.y_train))
        callbacks = []
        if self._bar is not None:
            self._bar.epoch_number = epoch
            callbacks.append(self._bar)
        history = self.model.fit(
            splits.x_train[order],
            splits.y_train[order],
            batch_size=config.batch_size,
            epochs=1,
            shuffle=False,  # the order above is the shuffle
            verbose=0,
            validation_data=(splits.x_valid, splits.y_valid),
            callbacks=callbacks,
        )
        return {name: float(values[-1]) for name, values in history.history.items()}
