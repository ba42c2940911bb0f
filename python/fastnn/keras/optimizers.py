"""Keras's optimizers: Keras 3's class names, argument names and defaults,
over ``fastnn.optim``'s update kernels.

    opt = Adam(learning_rate=1e-3)        # beta_1=0.9, beta_2=0.999, epsilon=1e-7
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")

An optimizer is made without its variables, as in Keras; the model binds it
to its weights (``build(var_list)``) when it is compiled or first trained.
The arguments map onto ``fastnn.optim`` as below, and each step is that
class's step (PyTorch's formulas, docs/api.md):

- ``SGD(learning_rate=0.01, momentum=0.0, nesterov=False)`` -> ``SGD(lr, momentum, nesterov)``
- ``RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)``
  -> ``RMSprop(lr, alpha=rho, eps=epsilon, momentum, centered)``
- ``Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)``
  -> ``Adagrad(lr, initial_accumulator_value, eps=epsilon)``
- ``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)``
  -> ``Adam(lr, betas=(beta_1, beta_2), eps=epsilon, amsgrad)``
- ``AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
  epsilon=1e-7, amsgrad=False)`` -> ``AdamW(lr, betas, eps, weight_decay)``: the
  decoupled decay p -= learning_rate * weight_decay * p, as Keras does it.

Each also takes ``clipnorm`` (each gradient clipped to that norm),
``clipvalue`` (each element to [-v, v]) and ``global_clipnorm`` (all
gradients together), applied before the step, and ``name``.
"""
import numpy as np

from .. import optim as _optim
from ..tensor import tensor

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "get"]


class Optimizer:
    """What the Keras optimizers here add to their ``fastnn.optim`` class:
    construction without variables, ``build(var_list)``, ``learning_rate``,
    gradient clipping. Mixed in before the fastnn class, named in ``_base``."""
    _base = None

    def __init__(self, name, clipnorm, clipvalue, global_clipnorm, **hyperparameters):
        fn = type(self).__name__
        for arg, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                       ("global_clipnorm", global_clipnorm)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not v > 0):
                raise ValueError(f"{fn}: argument '{arg}' must be a number > 0 or None, got "
                                 f"{v!r}")
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{fn}: give at most one of 'clipnorm', 'clipvalue' and "
                             f"'global_clipnorm'")
        self.name = name
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self._hyperparameters = hyperparameters
        self._model = None
        self.built = False
        # fastnn's checks of the values, now rather than at the first step
        self._base(tensor(np.zeros(1, np.float32), requires_grad=True), **hyperparameters)

    def build(self, var_list):
        """Binds the optimizer to the variables it updates (a model's
        ``parameters()``); a second call is ignored."""
        if not self.built:
            self._base.__init__(self, var_list, **self._hyperparameters)
            self.built = True

    def _attach(self, model):
        """The model whose weights a first step binds the optimizer to."""
        self._model = model
        if model.built:
            self.build(model.parameters())

    def _ensure_built(self):
        if not self.built:
            if self._model is None:
                raise RuntimeError(f"{type(self).__name__}: call build(var_list) first, or "
                                   "give the optimizer to model.compile")
            self.build(self._model.parameters())

    @property
    def learning_rate(self):
        if self.built:
            return float(self.param_groups[0]["lr"])
        return float(self._hyperparameters["lr"])

    @learning_rate.setter
    def learning_rate(self, value):
        self._hyperparameters["lr"] = float(value)
        if self.built:
            for group in self.param_groups:
                group["lr"] = float(value)

    def zero_grad(self, *args, **kwargs):
        self._ensure_built()
        return super().zero_grad(*args, **kwargs)

    def step(self, *args, **kwargs):
        self._ensure_built()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if self.clipvalue is not None:
            _optim.clip_grad_value(params, self.clipvalue)
        elif self.clipnorm is not None:
            for p in params:
                _optim.clip_grad_norm([p], self.clipnorm)
        elif self.global_clipnorm is not None:
            _optim.clip_grad_norm(params, self.global_clipnorm)
        return super().step(*args, **kwargs)

    def get_config(self):
        """Keras's configuration: the argument names and values."""
        return dict(self._keras_config(), name=self.name, clipnorm=self.clipnorm,
                    clipvalue=self.clipvalue, global_clipnorm=self.global_clipnorm)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._keras_config().items())
        return f"{type(self).__name__}({args})"


def _no_weight_decay(weight_decay, fn):
    if weight_decay not in (None, 0, 0.0):
        raise ValueError(f"{fn}: argument 'weight_decay' is not supported here (Keras decays "
                         f"the weights apart from the gradient); use AdamW, or a "
                         f"kernel_regularizer")


class SGD(Optimizer, _optim.SGD):
    _base = _optim.SGD

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="SGD"):
        _no_weight_decay(weight_decay, "SGD")
        super().__init__(name, clipnorm, clipvalue, global_clipnorm, lr=learning_rate,
                         momentum=momentum, nesterov=nesterov)

    def _keras_config(self):
        h = self._hyperparameters
        return dict(learning_rate=self.learning_rate, momentum=h["momentum"],
                    nesterov=h["nesterov"])


class RMSprop(Optimizer, _optim.RMSprop):
    _base = _optim.RMSprop

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="rmsprop"):
        _no_weight_decay(weight_decay, "RMSprop")
        super().__init__(name, clipnorm, clipvalue, global_clipnorm, lr=learning_rate,
                         alpha=rho, eps=epsilon, momentum=momentum, centered=centered)

    def _keras_config(self):
        h = self._hyperparameters
        return dict(learning_rate=self.learning_rate, rho=h["alpha"], momentum=h["momentum"],
                    epsilon=h["eps"], centered=h["centered"])


class Adagrad(Optimizer, _optim.Adagrad):
    _base = _optim.Adagrad

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="adagrad"):
        _no_weight_decay(weight_decay, "Adagrad")
        super().__init__(name, clipnorm, clipvalue, global_clipnorm, lr=learning_rate,
                         initial_accumulator_value=initial_accumulator_value, eps=epsilon)

    def _keras_config(self):
        h = self._hyperparameters
        return dict(learning_rate=self.learning_rate,
                    initial_accumulator_value=h["initial_accumulator_value"], epsilon=h["eps"])


class Adam(Optimizer, _optim.Adam):
    _base = _optim.Adam

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name="adam"):
        _no_weight_decay(weight_decay, "Adam")
        super().__init__(name, clipnorm, clipvalue, global_clipnorm, lr=learning_rate,
                         betas=(beta_1, beta_2), eps=epsilon, amsgrad=amsgrad)

    def _keras_config(self):
        h = self._hyperparameters
        return dict(learning_rate=self.learning_rate, beta_1=h["betas"][0],
                    beta_2=h["betas"][1], epsilon=h["eps"], amsgrad=h["amsgrad"])


class AdamW(Optimizer, _optim.AdamW):
    _base = _optim.AdamW

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name="adamw"):
        super().__init__(name, clipnorm, clipvalue, global_clipnorm, lr=learning_rate,
                         betas=(beta_1, beta_2), eps=epsilon, weight_decay=weight_decay,
                         amsgrad=amsgrad)

    def _keras_config(self):
        h = self._hyperparameters
        return dict(learning_rate=self.learning_rate, weight_decay=h["weight_decay"],
                    beta_1=h["betas"][0], beta_2=h["betas"][1], epsilon=h["eps"],
                    amsgrad=h["amsgrad"])


_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad, "adam": Adam, "adamw": AdamW}


def get(identifier):
    """A Keras optimizer from a name ("adam", "sgd", "rmsprop", "adagrad",
    "adamw", any case; Keras's defaults) or a class; an optimizer object
    (Keras's or ``fastnn.optim``'s) is returned as it is."""
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"optimizers.get: unknown optimizer {identifier!r}; valid names are "
                             f"{sorted(_BY_NAME)}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, _optim.Optimizer):
        return identifier
    raise TypeError(f"optimizers.get: argument 'identifier' must be an optimizer name or "
                    f"object, got {type(identifier).__name__}")
