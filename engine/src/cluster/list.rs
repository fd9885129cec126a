//! Paged lists: a large list comes in pages, so neither the API server nor vbackup has to
//! hold it whole at once.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

/// Objects per list call.
pub const PAGE_SIZE: u32 = 500;

/// A list read page by page: [`Pages::next`] gives the parameters of the next call,
/// [`Pages::advance`] takes the continue token of the page it returned.
#[derive(Debug, Clone)]
pub struct Pages {
    params: ListParams,
    done: bool,
}

impl Pages {
    /// The pages of a list with `params` (its limit set to [`PAGE_SIZE`]).
    pub fn new(params: ListParams) -> Pages {
        Pages {
            params: params.limit(PAGE_SIZE),
            done: false,
        }
    }

    /// The parameters of the next list call, `None` once the last page was read.
    pub fn next(&self) -> Option<&ListParams> {
        (!self.done).then_some(&self.params)
    }

    /// Moves on past the page whose list metadata is `meta`.
    pub fn advance(&mut self, meta: &ListMeta) {
        match meta.continue_.as_deref() {
            Some(token) if !token.is_empty() => {
                self.params = self.params.clone().continue_token(token);
            }
            _ => self.done = true,
        }
    }
}

/// Every object `api` lists with `params`, read page by page.
pub async fn list_all<K>(api: &Api<K>, params: ListParams) -> kube::Result<Vec<K>>
where
    K: Clone + DeserializeOwned + Debug,
{
    let mut pages = Pages::new(params);
    let mut out = Vec::new();
    while let Some(params) = pages.next() {
        let page = api.list(params).await?;
        pages.advance(&page.metadata);
        out.extend(page.items);
    }
    Ok(out)
}

/// The names of every object `api` lists with `params` (metadata only), page by page.
pub async fn list_names<K>(api: &Api<K>, params: ListParams) -> kube::Result<Vec<String>>
where
    K: Clone + DeserializeOwned + Debug,
{
    let mut pages = Pages::new(params);
    let mut out = Vec::new();
    while let Some(params) = pages.next() {
        let page = api.list_metadata(params).await?;
        pages.advance(&page.metadata);
        out.extend(page.items.into_iter().filter_map(|o| o.metadata.name));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(token: Option<&str>) -> ListMeta {
        ListMeta {
            continue_: token.map(String::from),
            ..ListMeta::default()
        }
    }

    #[test]
    fn pages_follow_continue_tokens_until_there_is_none() {
        let mut pages = Pages::new(ListParams::default().labels("app=web"));
        let first = pages.next().expect("a first page").clone();
        assert_eq!(first.limit, Some(PAGE_SIZE));
        assert_eq!(first.continue_token, None);
        assert_eq!(first.label_selector.as_deref(), Some("app=web"));

        pages.advance(&page(Some("t1")));
        let second = pages.next().expect("a second page");
        assert_eq!(second.continue_token.as_deref(), Some("t1"));
        assert_eq!(second.label_selector.as_deref(), Some("app=web"));

        // The API server ends a list with no token or an empty one.
        pages.advance(&page(Some("")));
        assert!(pages.next().is_none());
        let mut single = Pages::new(ListParams::default());
        single.advance(&page(None));
        assert!(single.next().is_none());
    }
}
