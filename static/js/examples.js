// The lesson's classic examples: one word, several contexts.

export const EXAMPLES = {
  mole: ["American shrew mole", "one mole of carbon dioxide", "take a biopsy of the mole"],
  tower: ["the Eiffel tower", "a miniature tower"],
  bank: ["we had a picnic on the river bank", "she deposited her salary at the bank"],
};
