"""Words for schema values in natural English, shared by the natural caption writer, the synthetic
caption templates and the parser so that what one side writes the other side reads.

Each table maps a schema value to its canonical phrase (what the writers use) and the synonyms
real MSP60K captions use for it (what the parser also accepts). Patterns are regular-expression
fragments matched on lower-cased text with word boundaries added by the parser.
"""

from __future__ import annotations

# Colour words and the synonyms real captions use; the canonical word is the schema value.
COLOR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "black": ("black", "dark", "charcoal", "jet-black"),
    "white": ("white", "off-white", "ivory", "cream-white"),
    "gray": ("gray", "silver", "grayish", "ash"),
    "red": ("red", "maroon", "burgundy", "crimson", "reddish", "wine-red", "scarlet"),
    "orange": ("orange", "orangish", "coral", "rust"),
    "yellow": ("yellow", "golden", "mustard", "yellowish", "gold"),
    "green": ("green", "olive", "teal", "khaki-green", "greenish", "mint", "turquoise"),
    "blue": ("blue", "navy", "bluish", "denim-blue", "cyan"),
    "purple": ("purple", "violet", "lavender", "lilac", "magenta", "plum"),
    "pink": ("pink", "pinkish", "rose", "fuchsia"),
    "brown": ("brown", "brownish", "chocolate", "coffee", "camel"),
    "beige": ("beige", "khaki", "tan", "cream", "light-brown", "sand"),
}
HAIR_COLOR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "black": ("black", "dark", "jet-black", "dark-colored"),
    "brown": ("brown", "brunette", "light-brown", "auburn", "chestnut"),
    "blonde": ("blonde", "blond", "fair", "golden"),
    "gray": ("gray", "grey", "silver", "graying", "salt-and-pepper"),
    "white": ("white",),
    "red": ("red", "ginger", "reddish"),
}

# Garments. The first phrase of each tuple is what the writers say.
UPPER_TYPES: dict[str, tuple[str, ...]] = {
    "t-shirt": ("t-shirt", "polo shirt", "polo", "top", "blouse", "tee", "jersey"),
    "shirt": ("shirt", "button-up shirt", "button-down shirt", "dress shirt", "plaid shirt"),
    "sweater": ("sweater", "sweatshirt", "jumper", "pullover", "cardigan", "knit top"),
    "hoodie": ("hoodie", "hooded sweatshirt", "hooded top"),
    # hi-vis workwear is labelled Jacket in MSP60K, not Vest
    "jacket": ("jacket", "windbreaker", "blazer jacket", "hooded jacket", "track jacket", "fleece",
               "(?:high-visibility|hi-vis|safety|reflective) vest"),
    "coat": ("coat", "overcoat", "trench coat", "long coat", "raincoat"),
    "cotton-padded coat": ("cotton-padded coat", "padded coat", "padded jacket", "puffer jacket", "puffer coat",
                           "down jacket", "down coat", "quilted jacket", "quilted coat", "winter coat",
                           "winter jacket", "cotton-padded jacket", "puffy jacket", "puffy coat", "parka"),
    "suit": ("suit", "suit jacket", "blazer", "business suit"),
    # MSP60K's "Vest" (Chinese 背心) is a sleeveless top, as "vest" is in British English.
    "vest": ("vest", "sleeveless vest", "tank top", "tank vest", "singlet", "camisole", "waistcoat", "gilet",
             "basketball jersey"),
    "dress": ("dress",),
    "uniform": ("uniform", "work uniform", "overalls", "apron"),
    "graduation gown": ("graduation gown", "academic gown", "graduation robe", "academic robe", "mortarboard"),
    "chef uniform": ("chef uniform", "chef's uniform", "chef coat", "chef's coat", "chef jacket", "chef's jacket",
                     "chef's hat", "chef hat", "chef's attire", "chef attire", "chef's whites"),
}
LOWER_TYPES: dict[str, tuple[str, ...]] = {
    "trousers": ("trousers", "pants", "slacks", "leggings", "sweatpants", "joggers", "track pants", "capris",
                 "cargo pants", "chinos"),
    "jeans": ("jeans", "denim pants", "denim trousers"),
    "shorts": ("shorts", "short pants", "capri shorts"),
    "long skirt": ("long skirt", "maxi skirt", "ankle-length skirt", "midi skirt"),
    "short skirt": ("short skirt", "skirt", "miniskirt", "mini skirt"),
    "dress": ("dress",),
}
SHOE_TYPES: dict[str, tuple[str, ...]] = {
    # the type can follow as a predicate: "her shoes appear to be dark-colored leather"
    "leather": ("leather shoes", "dress shoes", "formal shoes", "loafers", "oxfords", "high heels", "heels",
                r"(?:footwear|shoes) (?:is |are |appears? |seems? |looks? )(?:[\w-]+,? ){0,3}leather"),
    "casual": ("casual shoes", "sneakers", "trainers", "athletic shoes", "running shoes", "sports shoes",
               "canvas shoes", "tennis shoes", "flats", "slip-on shoes", "shoes", "casual footwear",
               r"(?:footwear|shoes) (?:is |are |appears? |seems? |looks? )(?:[\w-]+,? ){0,3}casual"),
    "boots": ("boots", "ankle boots", "rain boots", "booties", "boot"),
    "sandals": ("sandals", "slippers", "flip-flops", "flip flops", "slides", "sandal"),
    "other": ("unusual shoes", "other shoes", "unusual footwear", "socks only", "barefoot", "bare feet",
              r"other (?:types? of |kinds? of )?(?:footwear|shoes)",
              r"other than (?:typical |standard |regular |ordinary )?(?:shoes|sneakers|footwear)"),
}
BAG_TYPES: dict[str, tuple[str, ...]] = {
    "backpack": ("backpack", "rucksack", "school bag", "schoolbag", "knapsack"),
    "shoulder bag": ("shoulder bag", "crossbody bag", "cross-body bag", "messenger bag", "sling bag",
                     "satchel", "crossbody", "waist bag", "fanny pack", "belt bag", "bag over (?:his|her|their|the) shoulder",
                     "bag (?:is )?slung over"),
    # not "purse": a wallet in British English, and never labelled Handbag in MSP60K's val.jsonl (0 of 14)
    "handbag": ("handbag", "tote bag", "tote", "clutch", "hand bag"),
    "plastic bag": ("plastic bag", "shopping bag", "carrier bag", "plastic shopping bag", "polythene bag",
                    "translucent bag", "transparent bag"),
    "paper bag": ("paper bag", "paper shopping bag"),
    "suitcase": ("suitcase", "luggage", "rolling bag", "trolley bag", "roller bag", "trolley case"),
    # MSP60K's "Other bag" is any other carried thing, which captions call "something" or "an object".
    "other bag": ("bag of another kind", "other bag", "pouch", "sack", "duffel bag", "gym bag", "cloth bag",
                  r"carr(?:y|ies|ying) (?:something|an object|an item|items|various items|some items|objects|"
                  r"a small object|an unidentified object)"),
}
HELD_ITEMS: dict[str, tuple[str, ...]] = {
    "phone": ("phone", "cell phone", "mobile phone", "smartphone", "cellphone"),
    "umbrella": ("umbrella", "parasol"),
    "cup": ("cup", "bottle", "water bottle", "drink", "mug", "coffee cup"),
}
POSES: dict[str, tuple[str, ...]] = {
    "calling": ("talking on (?:a|the|his|her|their) (?:cell |mobile )?phone", "on (?:a|the) phone call",
                "on the phone", "phone (?:held )?(?:up )?to (?:his|her|their) ear", "making a (?:phone )?call",
                "calling", "on a call", "phone call"),
    "smoking": ("smoking", "cigarette", "cigar", "vaping"),
    "hands behind back": (r"(?:hands|arms) (?:are )?(?:[\w-]+ )?behind (?:his|her|their|the) back",
                          "hands behind back"),
    "arms crossed": ("arms crossed", "crossed arms", "arms folded", "folded arms", "arms are crossed",
                     "arms are folded", "crossing (?:his|her|their) arms", "folding (?:his|her|their) arms"),
}
MOTIONS: dict[str, tuple[str, ...]] = {
    "walking": ("walking", "walks", "strolling", "mid-stride", "in stride", "stepping", "walk"),
    "running": ("running", "jogging", "runs", "sprinting", "jogs"),
    "standing": ("standing", "stands", "stood", "waiting", "stationary", "standing still"),
    "sitting": ("sitting", "seated", "sits", "squatting", "crouching"),
    "riding bicycle": ("riding a bicycle", "riding a bike", "on a bicycle", "cycling", "bicycle", "bike",
                       "pedaling", "tricycle"),
    # a bare "motorcycle" is usually parked in the background; riding one is said
    "riding scooter": ("riding a scooter", "on a scooter", "scooter", "moped", "e-bike", "motor scooter",
                       "electric scooter", "(?:riding|on) (?:a|an|the|his|her|their) (?:motorcycle|motorbike|"
                       "electric bike|electric bicycle|electric vehicle)"),
    # MSP60K's class is the Chinese 滑板车, a kick scooter, as well as a skateboard.
    "riding skateboard": ("riding a skateboard", "skateboarding", "skateboard", "on a skateboard", "kick scooter",
                          "kick-scooter", "push scooter"),
}
# Nouns that name a garment without its type ("red bottoms", "black footwear"): colours attach
# to them while the type stays unknown.
GENERIC = "generic"
GENERIC_LOWER: tuple[str, ...] = ("bottoms", "lower-body clothing", "lower clothing", "lower garment")
GENERIC_SHOES: tuple[str, ...] = ("footwear",)
# Canonical English for attribute values the writers need beyond the tables above.
ORIENTATION_WORDS: dict[str, str] = {
    "front": "from the front", "back": "from behind", "side": "from the side",
}
