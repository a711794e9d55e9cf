"""A handful of hand-written articles for the unit tests of the decision (not the dev set: no tuning here)."""

from __future__ import annotations

from typing import Any

PRESS_RELEASE = (
    "The Cluj IT Cluster and the Rawabi Tech Hub signed a partnership agreement on Tuesday in Cluj-Napoca "
    "to connect software companies in Romania and Palestine. Under the agreement, 12 companies from each "
    "cluster will exchange engineers for three-month placements starting in June, and the two hubs will "
    'run a joint accelerator for 20 start-ups. "This is the first bridge between our two ecosystems," '
    "said Andrei Kelemen, executive director of the Cluj IT Cluster. The programme is funded with "
    "250,000 euros from the partners and local authorities."
)

PARTNERSHIP_EN: dict[str, Any] = {
    "url": "https://clujit.example/news/rawabi-partnership",
    "title": "Cluj IT Cluster and Rawabi Tech Hub sign partnership",
    "content_text": PRESS_RELEASE,
    "published": "2019-03-12T10:00:00+00:00",
    "language": "en",
}

# The same press release reprinted by another site, with its own headline and a closing line.
PARTNERSHIP_REPRINT: dict[str, Any] = {
    "url": "https://technews.example/2019/03/13/cluj-rawabi",
    "title": "Romanian and Palestinian tech clusters join forces",
    "content_text": PRESS_RELEASE + " More information is available on the clusters' websites.",
    "published": "2019-03-13",
    "language": "en",
}

# A Romanian write-up of the same event, in its own words.
PARTNERSHIP_RO: dict[str, Any] = {
    "url": "https://ziar.example/cluj-it-cluster-rawabi",
    "title": "Cluj IT Cluster a semnat un parteneriat cu Rawabi Tech Hub din Palestina",
    "content_text": (
        "Clusterul Cluj IT și Rawabi Tech Hub au semnat marți, la Cluj-Napoca, un acord de parteneriat "
        "care leagă companiile de software din România și Palestina. Câte 12 companii din fiecare cluster "
        "își vor trimite ingineri în stagii de trei luni începând din iunie, iar cele două centre vor "
        "derula un accelerator comun pentru 20 de start-up-uri. Programul are un buget de 250.000 de euro."
    ),
    "published": "2019-03-12T15:30:00+02:00",
    "language": "ro",
}

# An Arabic write-up: no Latin name in common, only the numbers and the meaning.
PARTNERSHIP_AR: dict[str, Any] = {
    "url": "https://akhbar.example/tech/cluj-rawabi",
    "title": "شراكة بين تجمع كلوج لتكنولوجيا المعلومات وحاضنة روابي التقنية",
    "content_text": (
        "وقّع تجمع كلوج لتكنولوجيا المعلومات وحاضنة روابي التقنية يوم الثلاثاء في مدينة كلوج نابوكا "
        "اتفاقية شراكة تربط شركات البرمجيات في رومانيا وفلسطين. وبموجب الاتفاقية، ستتبادل 12 شركة من كل "
        "تجمع المهندسين في تدريبات مدتها ثلاثة أشهر ابتداءً من حزيران، وسيدير المركزان معاً مسرّعة مشتركة "
        "لـ 20 شركة ناشئة. ويموَّل البرنامج بمبلغ 250,000 يورو."
    ),
    "published": "2019-03-13T08:00:00+02:00",
    "language": "ar",
}

# Same actors, same week, a different event.
CLUSTER_HACKATHON: dict[str, Any] = {
    "url": "https://clujit.example/news/hackathon-2019",
    "title": "Cluj IT Cluster opens registrations for its spring hackathon",
    "content_text": (
        "The Cluj IT Cluster has opened registrations for its annual spring hackathon, held on 6 and 7 "
        "April at the Cluj Innovation Park. Teams of up to five students will build prototypes for "
        "smart-city services proposed by the city hall; the three winning teams get mentoring from "
        "member companies. Last year 45 teams took part."
    ),
    "published": "2019-03-14T09:00:00+00:00",
    "language": "en",
}

# The same two clusters a year later: another agreement, another story.
PARTNERSHIP_RENEWED: dict[str, Any] = {
    "url": "https://clujit.example/news/rawabi-renewal",
    "title": "Cluj IT Cluster and Rawabi Tech Hub renew partnership",
    "content_text": PRESS_RELEASE.replace("signed", "renewed").replace("June", "September"),
    "published": "2020-03-20T10:00:00+00:00",
    "language": "en",
}
