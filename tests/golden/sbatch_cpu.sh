#!/bin/bash

# Parameters
#SBATCH --array=0-1%2
#SBATCH --cpus-per-task=2
#SBATCH --error=/results/.submitit/%A_%a/%A_%a_0_log.err
#SBATCH --job-name=hasac-bench
#SBATCH --mem=8GB
#SBATCH --nodes=1
#SBATCH --open-mode=append
#SBATCH --output=/results/.submitit/%A_%a/%A_%a_0_log.out
#SBATCH --partition=cpu
#SBATCH --requeue
#SBATCH --signal=USR2@90
#SBATCH --time=720
#SBATCH --wckey=submitit

# setup
source ~/venvs/hasac-bench/bin/activate
export OMP_NUM_THREADS=1

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /results/.submitit/%A_%a/%A_%a_%t_log.out --error /results/.submitit/%A_%a/%A_%a_%t_log.err python -u -m submitit.core._submit /results/.submitit/%j
