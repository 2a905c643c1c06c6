-- Label words (a verbalizer): the words a prompt asks the teacher for, mapped onto the label set, as a JSON object {"true": "entailment", ...}.
ALTER TABLE projects ADD COLUMN label_words VARCHAR;
