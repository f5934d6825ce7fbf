"""Reading a program's inputs: program.yaml and people.csv. Every problem in both files is
collected and reported at once, each with file, line and column (or YAML key path)."""

from intake.people_csv import check_people, load_people
from intake.problems import IntakeError, Problem
from intake.program_yaml import check_program, load_program

__all__ = [
    "IntakeError",
    "Problem",
    "check_people",
    "check_program",
    "load_people",
    "load_program",
]
