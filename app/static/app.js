"use strict";
// The API sits behind the same origin (nginx -> HAProxy -> app); assets come from CloudFront.
const api = (path, options) => fetch(path, options).then((r) => r.json());

function show(info) {
  for (const key of ["host", "cell", "version"]) {
    document.getElementById(key).textContent = info[key];
  }
}

function refresh() {
  api("/items").then((data) => {
    show(data);
    document.getElementById("read-from").textContent = data.read_from;
    const list = document.getElementById("items");
    list.replaceChildren(
      ...data.items.map((item) => {
        const li = document.createElement("li");
        li.textContent = `${item.name} `;
        const small = document.createElement("small");
        small.textContent = `#${item.id} by ${item.created_by} (${item.cell})`;
        li.append(small);
        return li;
      }),
    );
  });
}

document.getElementById("add").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = event.target.elements.name.value;
  api("/items", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name }),
  }).then(() => {
    event.target.reset();
    refresh();
  });
});

refresh();
