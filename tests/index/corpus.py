"""A small hand-written corpus of personal documents and questions each of them answers.

Each question names the file that answers it and a passage that must be inside the retrieved
chunk. Some questions paraphrase (dense retrieval's strength), some hinge on an exact name,
code or number (keyword retrieval's strength).
"""

from __future__ import annotations

from pathlib import Path

LEASE = """# Apartment lease: Lindenstrasse 14, flat 3B

## Parties and term

The lease is between Margarethe Vogel (landlord) and the tenants Sam and Alex Rivera. It starts on
1 March 2024 and runs for an indefinite period. Either side may end it with three months' notice,
given in writing before the third working day of a month.

## Rent and deposit

The monthly rent is 1,180 euros: 950 euros base rent plus 230 euros advance payment for heating,
water and building costs. Rent is due on the third working day of each month and is paid by bank
transfer to the account ending in 4471. The security deposit is three months of base rent,
2,850 euros, held in a separate savings account and returned within six months after moving out.

## Pets, noise and shared spaces

Small pets such as cats and rabbits are allowed; dogs need the landlord's written consent. Quiet
hours are from 22:00 to 7:00 on weekdays and all day on Sundays. Bicycles must be kept in the
courtyard shed, never in the stairwell. The laundry room in the basement may be used from
8:00 to 20:00.

## Repairs

Small repairs up to 120 euros per case, capped at 400 euros a year, are paid by the tenants.
Anything larger must be reported to the building manager, Herr Okonkwo, on 030 5566 120.
"""

BOILER = """Boiler notes (Vaillant ecoTEC plus, installed 2019 in the kitchen cupboard)

The boiler is serviced every October by Kessler Haustechnik. The last service was on 14 October
2024 and cost 165 euros; the technician replaced the ignition electrode.

Error codes we have seen:
F.28 means the burner failed to ignite. Usually the gas tap under the boiler was closed after
work on the pipes; open it and press the reset button for three seconds.
F.22 means the water pressure is too low. The gauge should read between 1.2 and 1.8 bar. Top it
up with the filling loop (the silver tap on the left) until the needle reaches 1.5 bar.

The thermostat schedule: 21 degrees from 6:30 to 22:00, 17 degrees at night. In the summer the
boiler stays on for hot water only (the snowflake-off, tap-only mode).

If the radiators are warm at the bottom but cold at the top, they need bleeding: use the
square radiator key in the drawer next to the sink and hold a cloth under the valve.
"""

TRIP = """Lisbon trip, May 2025

Flights: TAP TP 537 leaves Berlin at 06:10 on 9 May and lands at 08:35. The return flight
TP 540 leaves Lisbon on 16 May at 18:45. Booking reference QX7PLM.

Hotel: Casa do Largo, Rua das Flores 28, three nights from 9 to 12 May, breakfast included.
Check-in from 15:00. Then an apartment in Cascais from 12 to 16 May; the key box code is 2817.

Plans: the tram 28 early in the morning before the crowds, the tiles museum (Museu Nacional do
Azulejo, closed on Mondays), a day trip to Sintra by train from Rossio station, and a surfing
lesson in Cascais booked with Onda Viva for 13 May at 10:00.

Travel insurance is with Hanse Merkur, policy 88-1045-22; their emergency line is
+49 40 4119 1000.
"""

RECIPE = """Grandma Rosa's lentil soup (serves 6)

Soak 400 g of brown lentils overnight, or use red lentils which need no soaking. Fry two
chopped onions, three carrots and two celery sticks in olive oil for ten minutes. Add four
crushed garlic cloves, one teaspoon of cumin and a teaspoon of smoked paprika.

Add the lentils, a tin of chopped tomatoes and 1.5 litres of vegetable stock. Simmer for 35
minutes until the lentils are soft. The secret is a splash of red wine vinegar and a handful
of fresh parsley at the very end, never earlier.

The soup keeps for four days in the fridge and freezes well for three months. For a vegan
version leave out the parmesan rind that Rosa always added while simmering.
"""

HANDBOOK = """Northwind Analytics: employee handbook (excerpt)

Vacation. Full-time employees get 28 days of paid vacation per calendar year, plus the public
holidays of the state of Berlin. Up to five unused days may be carried over to the next year
and must be taken by 31 March. Vacation requests go through the HR portal at least two weeks
in advance.

Remote work. Employees may work from home up to three days a week after the six-month
probation period. Working from another EU country is allowed for up to 20 days a year;
outside the EU it needs approval from the legal team.

Equipment. Every employee receives a laptop and a 27-inch monitor. A home-office allowance of
600 euros is paid once for a desk and chair. Lost or stolen equipment must be reported to
it-help@northwind.example within 24 hours.

Sick leave. Call in sick before 10:00 on the first day. A doctor's note is needed from the
fourth day of illness.
"""

BIKE = """Bike maintenance log: Gazelle touring bike, frame number GZ-88213

March 2024: new chain (Shimano CN-HG71) and cassette, 74 euros at Radhaus Mitte.
June 2024: rear tyre punctured on the canal path; replaced the inner tube myself. Tyre size is
700x40C, pressure 4.5 bar in the rear and 4 bar in the front.
September 2024: the front brake squealed. The pads were glazed; sanded them and cleaned the rim
with alcohol. The brakes are V-brakes, not discs.
January 2025: winter check. The dynamo light flickered because of a loose cable at the hub;
fixed it with a new connector.

Lock: the ABUS folding lock, key number 2233-41. The spare key is in the blue box in the hall.
"""

GARDEN = """Allotment garden plot 42, Kleingartenverein Sonnenwinkel

The yearly fee is 310 euros, due by 15 January, paid to the club treasurer Ingrid Haas. The
water is switched on in mid-April and off at the end of October; before the first frost the
tap in the hut must be drained.

Planting calendar: potatoes go in at the start of April, beans after the ice saints in mid
May, tomatoes only after 20 May. The raspberry canes along the fence are pruned in February.

Club rules: at least one third of the plot must be used for growing fruit or vegetables. Lawn
mowers may only run on weekdays between 8:00 and 13:00 and between 15:00 and 19:00. Every member
works six hours a year on the communal paths; missed hours cost 15 euros each.
"""

PROJECT_RST = """Photo archive scripts
=====================

These scripts copy photos from the camera's SD card into the archive on the NAS.

Usage
-----

Run ``sync_photos.py --source /media/sdcard --dest /volume1/photos``. Files are renamed to
their EXIF capture time, for example 2024-07-14_183502.jpg, and duplicates are detected by
SHA-1 checksum.

Backups
-------

The NAS (a Synology DS220+ with two 4 TB drives in RAID 1) is backed up every Sunday at 03:00
to a Backblaze B2 bucket named rivera-photos-archive. Restoring a single album takes about an
hour; the encryption passphrase is in the password manager under "B2 archive".
"""

HEALTH_HTML = """<!DOCTYPE html>
<html><head><title>Vaccination record</title><style>body { font: 14px serif; }</style></head>
<body>
<h1>Vaccination record: Alex Rivera</h1>
<p>Tetanus and diphtheria booster on 12 February 2021 at Dr. Lindqvist's practice;
the next booster is due in February 2031.</p>
<h2>Travel vaccines</h2>
<p>Hepatitis A: two doses, completed in 2019. Yellow fever vaccination on 3 August 2018
before the trip to Ghana; the certificate is valid for life.</p>
<h2>Allergies</h2>
<p>Alex is allergic to penicillin (rash in 2015). Ibuprofen is tolerated.</p>
<script>console.log("not part of the text: zebra tetanus");</script>
</body></html>
"""

CAFE_CP1252 = """Café Brünnhilde: notes from the neighbourhood association meeting

The association meets on the second Tuesday of each month at 19:30 in the back room of
Café Brünnhilde. Membership costs 24 euros a year. The summer street party is planned for
the 21st of June; Sam Rivera volunteered to run the crêpe stand.
"""

# Distractors: same kinds of documents with different facts, so the right file must be found
# by what the question says, not by topic alone.
OLD_LEASE = """# Lease of our previous flat, Kastanienallee 7 (ended February 2024)

The rent there was 780 euros including heating. The landlord was the housing company Gewobag,
and the deposit of 1,560 euros was returned in full in August 2024. The notice period was also
three months. Pets were not allowed at all in that building, not even cats.
"""

PORTO = """Porto trip, September 2023

Flights with Ryanair FR 1421 from Berlin, booking reference ZT4KQA. We stayed at the Pestana
Vintage hotel by the river for four nights. Plans were a port wine cellar tour in Vila Nova de
Gaia, the Livraria Lello bookshop (book tickets online) and a day trip to the Douro valley by
train. The rental car pick-up code at the airport was 5530.
"""

CAR = """Car maintenance: VW Golf, licence plate B-SR 2210

The tyre pressure for the car is 2.3 bar front and 2.1 bar rear, or 2.5 bar when fully loaded.
Winter tyres go on in October and come off at Easter; they are stored at Reifen Krause for 60
euros a season. The last oil change was in May 2024 at 61,000 km; the next inspection is due
at 90,000 km or in May 2026. The dashboard showed a tyre pressure warning in January 2025, which
was just the cold.
"""

TOMATO_SOUP = """Quick tomato soup (serves 4)

Roast 1 kg of tomatoes with a red pepper and a whole head of garlic for 40 minutes at 200
degrees. Blend with 500 ml of vegetable stock, season with salt, sugar and basil, and simmer
for 10 minutes. Serve with a swirl of cream. Keeps for three days in the fridge.
"""

MEETING = """Team meeting notes, 4 November 2024

Present: Sam, Priya, Jonas, Mei. The quarterly report is due on 15 November; Priya owns the
charts. The office move to the third floor happens in the week of 9 December, so everybody
works from home that week. The team offsite is planned for March in Potsdam; the budget is
150 euros per person. Jonas reminded everyone to submit vacation requests for the holidays.
"""

# (title, paragraphs) per PDF page: an insurance policy.
INSURANCE_PDF_PAGES = [
    ("Household insurance policy HV-2024-55810", [
        "Insurer: Allianz Versicherungs-AG. Policyholders: Sam and Alex Rivera, Lindenstrasse 14, "
        "flat 3B. The policy covers household contents up to a sum insured of 65,000 euros.",
        "The annual premium is 189.60 euros, paid by direct debit every January.",
    ]),
    ("Covered events", [
        "Fire, lightning, explosion, burglary, vandalism after a break-in, tap water damage, "
        "storm and hail are covered. Bicycle theft is covered up to 1,500 euros if the bicycle "
        "was locked to a fixed object.",
        "Damage from floods and earthquakes is not covered without the elemental damage add-on.",
    ]),
    ("Claims", [
        "A claim must be reported within one week by phone on 0800 4100 104 or online. After a "
        "burglary, the police must be informed at once and a list of stolen items sent to them.",
        "The deductible is 150 euros per claim.",
    ]),
]

TEXT_FILES = {
    "home/lease.md": LEASE,
    "home/boiler.txt": BOILER,
    "travel/lisbon-2025.md": TRIP,
    "kitchen/lentil-soup.txt": RECIPE,
    "work/handbook.md": HANDBOOK,
    "home/bike-log.txt": BIKE,
    "garden/plot-42.md": GARDEN,
    "projects/photo-archive.rst": PROJECT_RST,
    "health/vaccinations.html": HEALTH_HTML,
    "home/old-lease-kastanienallee.md": OLD_LEASE,
    "travel/porto-2023.md": PORTO,
    "car/golf-maintenance.txt": CAR,
    "kitchen/tomato-soup.txt": TOMATO_SOUP,
    "work/meeting-2024-11-04.md": MEETING,
}

# (question, file, passage that must be in the retrieved chunk)
QUESTIONS = [
    ("How much is the monthly rent?", "home/lease.md", "1,180 euros"),
    ("How big is the security deposit for the flat?", "home/lease.md", "2,850 euros"),
    ("Are we allowed to keep a dog in the apartment?", "home/lease.md", "dogs need the landlord"),
    ("Who do I call about a big repair in the building?", "home/lease.md", "Herr Okonkwo"),
    ("What does boiler error F.28 mean?", "home/boiler.txt", "F.28"),
    ("The heating water pressure is too low, what should the gauge read?", "home/boiler.txt", "1.2 and 1.8 bar"),
    ("When was the boiler last serviced and how much did it cost?", "home/boiler.txt", "165 euros"),
    ("Radiators are cold at the top, what do I do?", "home/boiler.txt", "bleeding"),
    ("What is the booking reference for the Lisbon flights?", "travel/lisbon-2025.md", "QX7PLM"),
    ("What is the code of the key box at the Cascais apartment?", "travel/lisbon-2025.md", "2817"),
    ("When is the surfing lesson?", "travel/lisbon-2025.md", "Onda Viva"),
    ("How long do I simmer the lentil soup?", "kitchen/lentil-soup.txt", "35\nminutes"),
    ("What is the secret ingredient added at the end of Rosa's soup?", "kitchen/lentil-soup.txt", "red wine vinegar"),
    ("How many vacation days do employees get per year?", "work/handbook.md", "28 days"),
    ("Can I work from home and how often?", "work/handbook.md", "three days a week"),
    ("How much is the home office allowance?", "work/handbook.md", "600 euros"),
    ("What tyre pressure should the bike have?", "home/bike-log.txt", "4.5 bar"),
    ("Which chain was put on the Gazelle?", "home/bike-log.txt", "CN-HG71"),
    ("When is the allotment garden fee due and to whom?", "garden/plot-42.md", "Ingrid Haas"),
    ("When can tomatoes be planted in the garden?", "garden/plot-42.md", "20 May"),
    ("When does the NAS back up to the cloud?", "projects/photo-archive.rst", "every Sunday at 03:00"),
    ("How are duplicate photos detected?", "projects/photo-archive.rst", "SHA-1"),
    ("Is Alex allergic to any medicine?", "health/vaccinations.html", "penicillin"),
    ("When is the next tetanus booster due?", "health/vaccinations.html", "February 2031"),
    ("Is bicycle theft covered by the household insurance?", "insurance/policy.pdf", "1,500 euros"),
    ("What is the deductible per insurance claim?", "insurance/policy.pdf", "150 euros per claim"),
    ("What does the household insurance cost per year?", "insurance/policy.pdf", "189.60"),
    ("When does the neighbourhood association meet?", "notes/cafe.txt", "second Tuesday"),
]


def write_pdf(path: Path, pages: list[tuple[str, list[str]]] = INSURANCE_PDF_PAGES) -> None:
    """A real multi-page PDF with wrapped paragraphs, made with reportlab."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    styles = getSampleStyleSheet()
    story: list = []
    for number, (title, paragraphs) in enumerate(pages):
        if number:
            story.append(PageBreak())
        story.append(Paragraph(title, styles["Heading1"]))
        story += [Paragraph(text, styles["BodyText"]) for text in paragraphs]
    path.parent.mkdir(parents=True, exist_ok=True)
    SimpleDocTemplate(str(path), pagesize=A4).build(story)


def write_corpus(root: Path) -> Path:
    """Write every corpus file under ``root`` (one cp1252 file, one PDF) and return ``root``."""
    for relative, text in TEXT_FILES.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    (root / "notes").mkdir(parents=True, exist_ok=True)
    (root / "notes" / "cafe.txt").write_bytes(CAFE_CP1252.encode("cp1252"))
    write_pdf(root / "insurance" / "policy.pdf")
    return root
