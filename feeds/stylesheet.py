"""The XSL stylesheet that makes an RSS or Atom feed opened in a browser read as a page.

RSS and Atom renders carry ``<?xml-stylesheet type="text/xsl" href="…/feeds.xsl"?>``; browsers apply
it, feed readers ignore it. Every value is written with ``xsl:value-of`` (escaped text), never with
``disable-output-escaping``, so nothing in a feed becomes markup or script on the page; links are
only followed for ``http(s)`` URLs.
"""

from __future__ import annotations

CONTENT_TYPE = "text/xsl; charset=utf-8"

STYLESHEET = """<?xml version="1.0" encoding="utf-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom" exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="utf-8" doctype-system="about:legacy-compat"/>
  <xsl:template name="link">
    <xsl:param name="href"/>
    <xsl:param name="text"/>
    <xsl:choose>
      <xsl:when test="starts-with($href, 'https://') or starts-with($href, 'http://')">
        <a href="{$href}" rel="noopener noreferrer"><xsl:value-of select="$text"/></a>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$text"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>
  <xsl:template match="/">
    <xsl:variable name="title" select="/rss/channel/title | /atom:feed/atom:title"/>
    <html>
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/></title>
        <style>
          body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
          .note { background: #f3f6fa; border-radius: 6px; padding: .75rem 1rem; }
          li { margin: 0 0 1.25rem; list-style: none; } ul { padding: 0; }
          small { color: #555; }
        </style>
      </head>
      <body>
        <p class="note">This is a web feed. Copy its address into a feed reader to follow it.</p>
        <h1><xsl:value-of select="$title"/></h1>
        <p><xsl:value-of select="/rss/channel/description | /atom:feed/atom:subtitle"/></p>
        <ul>
          <xsl:for-each select="/rss/channel/item">
            <li>
              <strong><xsl:call-template name="link">
                <xsl:with-param name="href" select="link"/>
                <xsl:with-param name="text" select="title"/>
              </xsl:call-template></strong><br/>
              <small><xsl:value-of select="pubDate"/></small>
            </li>
          </xsl:for-each>
          <xsl:for-each select="/atom:feed/atom:entry">
            <li>
              <strong><xsl:call-template name="link">
                <xsl:with-param name="href" select="atom:link[@rel='alternate']/@href"/>
                <xsl:with-param name="text" select="atom:title"/>
              </xsl:call-template></strong><br/>
              <small><xsl:value-of select="atom:published"/></small>
            </li>
          </xsl:for-each>
        </ul>
      </body>
    </html>
  </xsl:template>
</xsl:stylesheet>
"""
