// Package sim holds the adversaries and fleets that the adversarial tests
// and `neurolov bench verify` share: cheating behaviours (a single element
// perturbed by a multiple of its tolerance, a 1% bias on every element, a
// colluding group returning the same wrong answer) and helpers to judge
// accepted results against the CPU reference and the Freivalds floor.
//
// Nothing here is used by a real coordinator or worker.
package sim
