#!/usr/bin/env bash
# One study on a SLURM cluster: every node runs the same command against one PostgreSQL database,
# one worker per GPU. The study is created before the workers start (creating it from several
# nodes at once can race), and a node that dies only loses its running trials: the heartbeat
# marks them failed after `heartbeat.grace_period` seconds and another worker runs them again.
#
# The URL travels in the environment (sbatch exports it to every node) and is passed as
# `--storage env:INFOAE_STORAGE`: on a command line its password would show in `ps` on every node.
#
#   export INFOAE_STORAGE=postgresql://USER:PASSWORD@DBHOST/infoae
#   sbatch --nodes=4 --gpus-per-node=4 sweeps/slurm_sweep.sh sweeps/beta_elbo_beta.yaml
#SBATCH --job-name=infoae-sweep
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --output=infoae-sweep-%j.out
set -euo pipefail
study="${1:?usage: sbatch sweeps/slurm_sweep.sh STUDY.yaml}"
: "${INFOAE_STORAGE:?set INFOAE_STORAGE to the PostgreSQL URL}"
export WANDB_MODE="${WANDB_MODE:-offline}"   # `wandb sync` the runs later, or set WANDB_MODE=online

# Create the study once (no trials), then start every node's workers.
infoae sweep "$study" --storage env:INFOAE_STORAGE --create-only
gpus="${SLURM_GPUS_ON_NODE:-1}"
srun --ntasks-per-node=1 infoae sweep "$study" --storage env:INFOAE_STORAGE --workers "$gpus" --no-report

# The figures and the table of best trials, once every node has finished.
infoae sweep report "$study" --storage env:INFOAE_STORAGE
