//! Self-contained HTML pages of laconic's markdown reports (a run's `report/report.html`, a lab's
//! `report.html`): the markdown is rendered by `pulldown-cmark` (tables included) and every image
//! that names an SVG file inside the report's folder is inlined, so the page opens in a browser from
//! the disk with no server, no network and no script. The markdown files stay for terminals.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};

use crate::error::{Error, Result};

/// One part of a page: markdown and the folder its image paths are relative to.
#[derive(Debug, Clone)]
pub struct Section<'a> {
    /// The markdown text.
    pub markdown: &'a str,
    /// The folder the markdown's relative image paths start from.
    pub base: &'a Path,
}

/// The page's look: readable tables and figures, nothing fetched.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;\
padding:0 1rem;line-height:1.45;color:#222}table{border-collapse:collapse;margin:.8rem 0}\
th,td{border:1px solid #ccc;padding:.25rem .6rem}th{background:#f3f3f3}\
code{background:#f3f3f3;padding:0 .2rem}.figure{display:block;margin:1rem 0}\
.figure svg{max-width:100%;height:auto;display:block}\
.caption{display:block;font-size:.85rem;color:#555}\
section+section{border-top:1px solid #ddd;margin-top:2rem}";

/// Renders `sections` into one HTML page titled `title`, each SVG image inlined.
pub fn page(title: &str, sections: &[Section<'_>]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    );
    for section in sections {
        out.push_str("<section>\n");
        out.push_str(&render(section));
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Writes [`page`] to `path`; returns `path`.
///
/// # Errors
/// When the file cannot be written.
pub fn write_page(path: &Path, title: &str, sections: &[Section<'_>]) -> Result<PathBuf> {
    std::fs::write(path, page(title, sections)).map_err(|e| Error::io(path, e))?;
    Ok(path.to_path_buf())
}

/// One section's markdown as HTML, its SVG images replaced by the files' own `<svg>` elements,
/// captioned with the image's text. An image that is not a readable SVG inside the
/// section's folder (a web address, an absolute path, `..`) becomes its caption alone, so the page
/// never reaches outside.
fn render(section: &Section<'_>) -> String {
    let parser = Parser::new_ext(section.markdown, Options::ENABLE_TABLES);
    let mut events: Vec<Event<'_>> = Vec::new();
    let mut image: Option<(Option<String>, String)> = None;
    for event in parser {
        match (&mut image, event) {
            (None, Event::Start(Tag::Image { dest_url, .. })) => {
                image = Some((inline_svg(section.base, &dest_url), String::new()));
            }
            (Some((_, caption)), Event::Text(text) | Event::Code(text)) => caption.push_str(&text),
            (Some(_), Event::End(TagEnd::Image)) => {
                let (svg, caption) = image.take().expect("inside an image");
                events.push(Event::Html(CowStr::from(figure(svg, &caption))));
            }
            (Some(_), _) => {}
            // Markup written into a report (a path, a name) is shown, never interpreted.
            (None, Event::Html(text) | Event::InlineHtml(text)) => events.push(Event::Text(text)),
            (None, event) => events.push(event),
        }
    }
    let mut out = String::new();
    html::push_html(&mut out, events.into_iter());
    out
}

/// A figure: the inlined SVG (when there is one) and its caption. Spans shown as blocks, not
/// `<figure>`, because markdown puts an image inside a paragraph, where only phrasing content
/// belongs.
fn figure(svg: Option<String>, caption: &str) -> String {
    let caption = escape(caption);
    match svg {
        Some(svg) => {
            format!("<span class=\"figure\">{svg}<span class=\"caption\">{caption}</span></span>")
        }
        None => format!(
            "<span class=\"figure\"><span class=\"caption\">[{caption}: not inlined]</span></span>"
        ),
    }
}

/// The `<svg>` element of the file `url` names, relative to `base`, without its XML prolog; `None`
/// unless `url` is a relative path to an `.svg` file under `base`.
fn inline_svg(base: &Path, url: &str) -> Option<String> {
    let relative = Path::new(url);
    let inside = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside || !url.ends_with(".svg") || url.contains("://") {
        return None;
    }
    let text = std::fs::read_to_string(base.join(relative)).ok()?;
    let start = text.find("<svg")?;
    Some(text[start..].trim_end().to_string())
}

/// `text` with HTML's special characters escaped.
fn escape(text: &str) -> String {
    let mut out = String::new();
    html::push_html(&mut out, std::iter::once(Event::Text(CowStr::from(text))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_and_svg_images_are_inlined() {
        let dir = std::env::temp_dir().join(format!("laconic-html-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("figures")).unwrap();
        std::fs::write(
            dir.join("figures/a.svg"),
            "<?xml version=\"1.0\"?>\n<svg width=\"10\" height=\"10\"><rect width=\"5\" height=\"5\"/></svg>\n",
        )
        .unwrap();
        let markdown = "# Run <x>\n\n| budget | acc |\n|---:|---:|\n| 64 | 1.5 |\n\n\
                        ![figures/a.svg](figures/a.svg)\n\n![far](../b.svg) ![web](http://e/c.svg)\n";
        let html = page(
            "run & co",
            &[Section {
                markdown,
                base: &dir,
            }],
        );
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains("<h1>Run &lt;x&gt;</h1>"), "{html}");
        assert!(html.contains("<title>run &amp; co</title>"), "{html}");
        assert!(
            html.contains("<table>") && html.contains(">1.5</td>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"figure\"><svg width=\"10\""),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"caption\">figures/a.svg</span>"),
            "{html}"
        );
        assert!(!html.contains("<?xml") && !html.contains("<img"), "{html}");
        // Outside the folder or on the web: the caption only, nothing fetched.
        assert!(html.contains("[far: not inlined]") && html.contains("[web: not inlined]"));
        assert!(!html.contains("http://e"), "{html}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
