"""GenerativePolicy: observation encoder + time embeddings + velocity head + normalizers, one module.

    images: name -> (B, H, W, 3) uint8 (or points: name -> (B, N, 3) float32), proprio (B, P) raw
        ->  actions (B, Ta, Da) in robot units

`compute_loss(batch)` trains it (MeanFlow or flow matching, plus dispersive terms, distillation and state prediction
where configured); `select_action(...)` samples in `steps` network evaluations (1 by default for MeanFlow).
"""
from __future__ import annotations

import torch
from torch import nn

from dm1_ros.policy import objectives
from dm1_ros.policy.config import LowDimConfig, PolicyConfig
from dm1_ros.policy.dispersive import total_dispersive
from dm1_ros.policy.networks import LowDimEncoder, PointNetEncoder, ResidualMLPHead, TimeEmbedding, ViTEncoder
from dm1_ros.policy.normalizer import MinMaxNormalizer


class GenerativePolicy(nn.Module):
    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        p = config.proprio_dim
        self.action_normalizer = MinMaxNormalizer(config.action_dim)
        self.proprio_normalizer = MinMaxNormalizer(p)
        self.point_encoders = nn.ModuleDict({key: PointNetEncoder(config.pointnet) for key in config.point_cloud_keys})
        if config.encoder == "vit":
            self.image_encoders = nn.ModuleDict(
                {key: ViTEncoder(config.vision, tuple(config.image_size), p) for key in config.image_keys}
            )
            cond_dim = sum(e.out_dim for e in self.image_encoders.values()) + p
            self.state_encoder = None
        elif config.encoder == "pointnet":
            self.image_encoders = nn.ModuleDict()
            cond_dim = sum(e.out_dim for e in self.point_encoders.values()) + p
            self.state_encoder = None
        else:
            self.image_encoders = nn.ModuleDict()
            self.state_encoder = LowDimEncoder(config.lowdim, p)
            cond_dim = self.state_encoder.out_dim + p
        predict = config.state_prediction
        encoded_dim = cond_dim  # what the state predictor reads
        if predict.feed:
            cond_dim += predict.target_dim
        self.cond_dim = cond_dim
        self.time_t = TimeEmbedding(config.time)
        self.time_r = TimeEmbedding(config.time)
        self.flat_dim = config.chunk * config.action_dim
        if config.method.guidance.kind == "cfg":  # MeanFlow's CFG: the condition a dropped one is replaced by
            self.null_condition = nn.Parameter(torch.zeros(cond_dim))
        self.head = ResidualMLPHead(config.head, self.flat_dim, 2 * config.time.dim, cond_dim, self.flat_dim)
        # Built last: a seed initializes the encoder and head the same with or without it (a one-change comparison).
        # Unless fed to the head, the sampler never calls the predictor and the exported graph leaves it out.
        if predict.keys:
            self.state_normalizer = MinMaxNormalizer(predict.target_dim)
            self.state_predictor = LowDimEncoder(LowDimConfig(predict.hidden, 2, predict.target_dim), encoded_dim)

    # --- pieces -------------------------------------------------------------------------------------------------
    def encode(self, images: dict[str, torch.Tensor], proprio: torch.Tensor,
               points: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
        """Raw observation -> condition (B, cond_dim) and named features: for the dispersive terms, and the predicted
        state (B, S) in normalized units where state_prediction.feed appends it to the condition."""
        prop = self.proprio_normalizer.normalize(proprio)
        if self.state_encoder is not None:
            tokens = self.state_encoder(prop)
            cond = torch.cat([tokens, prop], dim=-1)
        elif self.point_encoders:
            if points is None:
                raise ValueError(f"this policy reads point clouds {list(self.point_encoders)}; none were given")
            features, pooled = zip(*(encoder(points[key]) for key, encoder in self.point_encoders.items()))
            tokens = torch.cat(pooled, dim=-1)
            cond = torch.cat([*features, prop], dim=-1)
        else:
            visual, token_means = [], []
            for key, encoder in self.image_encoders.items():
                v, tok = encoder(images[key], prop)
                visual.append(v)
                token_means.append(tok)
            tokens = torch.cat(token_means, dim=-1)
            cond = torch.cat([*visual, prop], dim=-1)
        features = {"condition": cond, "tokens": tokens}
        if self.config.state_prediction.feed:
            features["predicted_state"] = self.state_predictor(cond)
            cond = torch.cat([cond, features["predicted_state"]], dim=-1)
        return cond, features

    def velocity(self, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor, cond: torch.Tensor):
        """z (B, Ta*Da), r and t (B,) or (1,) -> average velocity over [r, t] (B, Ta*Da), head features.

        Sampling passes r and t of shape (1,): the time embedding is then computed once and broadcast, and in the
        exported graph it is a constant."""
        second = r if self.config.time.mode == "t_r" else t - r
        temb = torch.cat([self.time_t(t), self.time_r(second)], dim=-1)
        u, hidden = self.head(z, temb, cond)
        return u, {"head_hidden": hidden, "time_embedding": temb}

    # --- training -----------------------------------------------------------------------------------------------
    def compute_loss(self, batch: dict, generator: torch.Generator | None = None,
                     teacher: "GenerativePolicy | None" = None) -> tuple[torch.Tensor, dict]:
        """batch: images {name: (B, H, W, 3) uint8 (or float 0..255)}, proprio (B, P), actions (B, Ta, Da) raw.
        teacher: the EMA weights, whose method.distill_steps-step samples the one-step map is distilled toward
        (ignored when distillation is off)."""
        cond, features = self.encode(batch.get("images", {}), batch["proprio"], batch.get("points"))
        a = self.action_normalizer.normalize(batch["actions"]).reshape(cond.shape[0], -1)
        state_loss = self.state_prediction_loss(features, batch) if self.config.state_prediction.keys else None

        def velocity_fn(z, r, t):
            return self.velocity(z, r, t, cond)

        method = self.config.method
        guide_fn = None  # MP1 guidance mixes in the model itself (objectives.meanflow_loss)
        if method.guidance.kind == "cfg":
            null = self.null_condition.expand_as(cond)
            drop = torch.rand(cond.shape[0], generator=generator, device=cond.device) < method.guidance.dropout
            cond = torch.where(drop[:, None], null, cond)
            guide_fn = lambda z, r, t: self.velocity(z, r, t, null)  # noqa: E731
        if method.name == "meanflow":
            loss, aux, logs = objectives.meanflow_loss(velocity_fn, a, method, generator, guide_fn)
        else:
            loss, aux, logs = objectives.flow_matching_loss(velocity_fn, a, method, generator)
        if method.distill_steps and teacher is not None:
            distill, distill_log = self.distill_loss(batch, cond, teacher, generator)
            loss = loss + method.distill_weight * distill
            logs["loss/distill"] = distill_log
        if self.config.dispersive:
            disp, disp_logs = total_dispersive(self.config.dispersive, {**features, **aux})
            loss = loss + disp
            logs.update(disp_logs)
        if state_loss is not None:
            loss = loss + self.config.state_prediction.weight * state_loss
            logs["loss/state"] = float(state_loss.detach())
        logs["loss/total"] = float(loss.detach())
        return loss, logs

    def predict_state(self, features: dict) -> torch.Tensor:
        """encode()'s features -> the privileged state predicted from the encoder's condition (B, S), normalized."""
        if "predicted_state" in features:  # fed to the head: computed once, in encode()
            return features["predicted_state"]
        return self.state_predictor(features["condition"])

    def state_prediction_loss(self, features: dict, batch: dict) -> torch.Tensor:
        """Mean squared error, in normalized units, of the privileged state predicted from encode()'s features;
        batch["state_targets"] (B, S) raw, batch["state_valid"] (B,) optional 0/1 (rows that hold no state are
        left out) -> scalar."""
        if "state_targets" not in batch:
            raise ValueError(f"this policy predicts {self.config.state_prediction.keys} in training; the batch has no "
                             "state_targets (read the data with the policy's state_prediction keys)")
        target = self.state_normalizer.normalize(batch["state_targets"])
        error = (self.predict_state(features) - target).pow(2).mean(-1)
        valid = batch.get("state_valid")
        if valid is None:
            return error.mean()
        return (error * valid).sum() / valid.sum().clamp(min=1.0)

    def distill_loss(self, batch: dict, cond: torch.Tensor, teacher: "GenerativePolicy",
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, float]:
        """Mean squared distance, in normalized action units, between this model's one-step sample and the
        teacher's method.distill_steps-step sample from the same noise: cond (B, C) -> scalar."""
        b = cond.shape[0]
        noise = torch.randn(b, self.config.chunk * self.config.action_dim, generator=generator, device=cond.device,
                            dtype=cond.dtype)
        with torch.no_grad():
            teacher_cond, _ = teacher.encode(batch.get("images", {}), batch["proprio"], batch.get("points"))
            target = teacher.sample_normalized(teacher_cond, noise, self.config.method.distill_steps).reshape(b, -1)
        u, _ = self.velocity(noise, cond.new_zeros(b), cond.new_ones(b), cond)  # the one-step query: r = 0, t = 1
        err = (noise - u - target).pow(2).mean(-1).mean()
        return err, float(err.detach())

    # --- sampling -----------------------------------------------------------------------------------------------
    def sample_normalized(self, cond: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
        z = objectives.sample(lambda z, r, t: self.velocity(z, r, t, cond), noise.reshape(cond.shape[0], -1), steps, self.config.method.name)
        return z.clamp(-1.0, 1.0).reshape(-1, self.config.chunk, self.config.action_dim)

    def forward(self, images: dict[str, torch.Tensor], proprio: torch.Tensor, noise: torch.Tensor, steps: int = 1,
                points: dict[str, torch.Tensor] | None = None):
        """The deployable sampler: raw observation + noise (B, Ta, Da) -> actions (B, Ta, Da) in robot units."""
        cond, _ = self.encode(images, proprio, points)
        return self.action_normalizer.unnormalize(self.sample_normalized(cond, noise, steps))

    @torch.no_grad()
    def select_action(self, images: dict[str, torch.Tensor], proprio: torch.Tensor, steps: int | None = None,
                      noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                      points: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        steps = steps or self.config.method.sampling_steps
        if noise is None:
            noise = torch.randn(proprio.shape[0], self.config.chunk, self.config.action_dim, generator=generator)
        return self(images, proprio, noise, steps, points)

    def parameter_breakdown(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters()) if m is not None else 0  # noqa: E731
        return {
            "encoder": count(self.image_encoders) + count(self.point_encoders) + count(self.state_encoder),
            "time_embeddings": count(self.time_t) + count(self.time_r),
            "head": count(self.head),
            "total": count(self),
        }
