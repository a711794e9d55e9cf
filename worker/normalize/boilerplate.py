"""Words that give page furniture away where structure does not: en, de, fr, es, it, ro, pt, nl, ar.

Only short, whole lines are matched (a label such as "Advertisement" or "Read more"), never words inside
prose, so a sentence that mentions advertising stays. Pitches (newsletter sign-ups, cookie notices) need two
signals in one small block: the topic word and a call to action.
"""

from __future__ import annotations

import re

_LABELS = (
    # share
    r"share(?: this)?(?: article| post| story| page| on \w+)?|share via .*|tweet(?: this)?|e-?mail|print|"
    r"teilen|artikel teilen|diesen artikel teilen|drucken|partager(?: cet article| sur \w+)?|imprimer|"
    r"compartir(?: en \w+)?|imprimir|condividi(?: su \w+)?|stampa|distribuie|trimite|partilhar|delen|"
    r"شارك|مشاركة|طباعة|"
    # advertising
    r"advertisement|advertising|ad|ads|sponsored(?: content)?|anzeige|werbung|publicité|pub|publicidad|"
    r"anuncio|pubblicità|publicitate|reclamă|reclama|publicidade|advertentie|إعلان|"
    # related / read more
    r"related(?: posts| articles| stories| news| content| topics)?|"
    r"you (?:may|might) also (?:like|enjoy)|read (?:more|next|also)|recommended(?: for you| articles)?|"
    r"more (?:stories|news|from .{1,30})|continue reading.{0,60}|"
    r"mehr zum thema|das könnte sie auch interessieren|weiterlesen|lesen sie auch|auch interessant|"
    r"à lire aussi|a lire aussi|lire aussi|lire la suite|sur le même sujet|voir aussi|"
    r"lee también|leer más|te puede interesar|noticias relacionadas|más información|"
    r"leggi anche|leggi tutto|potrebbe interessarti|articoli correlati|"
    r"citește și|citeste si|citește mai mult|vezi și|vezi si|articole similare|"
    r"leia também|leia mais|lees ook|lees meer|"
    r"اقرأ أيضا|اقرأ أيضاً|اقرأ المزيد|مواضيع ذات صلة|أخبار ذات صلة|"
    # comments
    r"leave a (?:reply|comment)|post a comment|comments?(?: \(\d+\))?|\d+ comments?|no comments(?: yet)?|"
    r"kommentare?(?: \(\d+\))?|\d+ kommentare?|commentaires?|\d+ commentaires?|comentarios?|\d+ comentarios?|"
    r"commenti|\d+ commenti|comentarii|\d+ comentarii|reacții|تعليقات|التعليقات|"
    # subscribe / follow
    r"subscribe(?: to our newsletter| now)?|sign up for (?:our|the) .{1,40}|follow us(?: on .{1,30})?|"
    r"newsletter|abonnieren|jetzt abonnieren|folgen sie uns.{0,30}|abonnez-vous|suivez-nous.{0,30}|"
    r"suscríbete|síguenos.{0,30}|iscriviti|seguici.{0,30}|abonează-te|aboneaza-te|urmărește-ne.{0,30}|"
    r"اشترك|تابعنا.{0,30}|"
    # tags, navigation
    r"accept(?: all)? cookies|tags?|filed under|schlagwörter|themen|mots-clés|etiquetas|etichete|"
    r"skip to (?:main )?content|back to top|previous (?:post|article)|next (?:post|article)|"
    r"zum inhalt springen|nach oben|retour en haut|volver arriba|torna su|înapoi sus|"
    # photo credits and media labels
    r"(?:photo|foto|image|bild|credit|crédit|crédito|credito|fotó|source|quelle|sursa|sursă)s?\s*[:©].{0,60}|"
    r"©.{0,80}|\(c\) .{0,60}|getty images|reuters/.{0,40}|ap photo.{0,40}|"
    r"(?:video|audio|galerie|gallery|galería|galleria|podcast|foto|photos?|fotos?)\s*(?:\d+\s*)?"
)
_BOILERPLATE = re.compile(rf"^(?:{_LABELS})[\s:.!…|»\u203a>\-]*$", re.I)
_WIDGET_LABEL = re.compile(
    r"share|social|comment|related|cookie|consent|newsletter|advert|sponsor|teilen|kommentar|werbung|anzeige|"
    r"partager|commentaire|publicit|compartir|comentario|condividi|commenti|distribui|comentarii|شارك|تعليق",
    re.I,
)

_COOKIE = re.compile(r"\bcookies?\b|\bgdpr\b|\bdsgvo\b|\brgpd\b", re.I)
_CONSENT = re.compile(
    r"\b(?:accept|agree|consent|got it|allow|reject|decline|akzeptieren|zustimmen|einverstanden|accepter|"
    r"j'accepte|aceptar|acepto|accetta|accetto|acceptă|accept|accepto|aceitar|موافق|قبول)\b",
    re.I,
)
_NEWSLETTER = re.compile(r"\bnewsletters?\b|النشرة", re.I)
_SIGNUP = re.compile(
    r"\b(?:sign ?up|subscribe|inbox|e-?mail address|anmelden|abonnieren|e-mail-adresse|inscri(?:vez|bete|ere|"
    r"ption)|abonn(?:ez|ement)|suscr[ií]b|iscriviti|iscrizione|abonează|aboneaza|abonare|assine|inscreva|"
    r"اشترك|بريدك)",
    re.I,
)


def is_boilerplate(text: str) -> bool:
    """True for a short line that is only a furniture label (any of the covered languages)."""
    return len(text) <= 90 and bool(_BOILERPLATE.match(text))


def widget_label(label: str) -> bool:
    """True when an ``aria-label`` names a widget (share bar, comments, ads...)."""
    return bool(_WIDGET_LABEL.search(label))


def is_pitch(text: str) -> bool:
    """True for a small block that is a cookie notice or a newsletter sign-up."""
    return bool(
        (_COOKIE.search(text) and _CONSENT.search(text))
        or (_NEWSLETTER.search(text) and _SIGNUP.search(text))
    )
