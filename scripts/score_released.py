"""Score the authors' released answers into the tidy alignment table and the country matrices."""

import logging

from culturespa.released import load_released
from culturespa.logs import run_logged
from culturespa import io
from culturespa.scoring import ScoringSettings, score_answers, topic_scores, write_alignment
from culturespa.survey import Survey


def main():
    survey = Survey.load(snakemake.input.questions, snakemake.input.proportions)
    answers = load_released(snakemake.input.answers, snakemake.params.methods)
    settings = ScoringSettings.from_config(snakemake.params.scoring)
    table, matrices = score_answers(answers, survey, snakemake.params.countries, snakemake.wildcards.model, settings)
    write_alignment(table, matrices, snakemake.output.table, snakemake.output.matrices, snakemake.output.wide)
    topics = topic_scores(answers, survey, snakemake.params.countries, snakemake.wildcards.model)
    io.write_csv(snakemake.output.topics, topics)
    logging.info("scored %d answers: %d rows", len(answers), len(table))


run_logged(snakemake.log[0], main)
